"""The quote and the check per answer, with and without the sentence cache (LRC_SENTENCE_CACHE).

    python -m rag bench quote [--rounds 2] [--limit N] [--no-write]

Each answer encodes the sentences of its passages twice: for the quote (rag.answer.evidence.select) and for
the check of the model's answer (rag.answer.check.check). With the cache, the check finds them, and so does
a later question that retrieves a passage again. Here every question is a different one (the answer set's
facts, follow-ups and unanswerable questions on R-admin.pdf, bench/data/answers), so no quote is served from
an identical earlier question: what is measured is the check's share plus the passages the questions
share. In one process, the real embedder and library (top 6, hybrid); the answer checked is the quote's
sentences and one sentence no passage makes (no model: the check's cost depends on the passages). Rounds
alternate off and on (the cache emptied before each "on" round); seconds per question, medians over rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TITLE = "The quote and the check: the sentence cache"
EXTRA = "The lighthouse keeper counted forty-two lamps in the north tower last winter."


def one_round(lib, queries: list[dict], cache: bool) -> dict:
    from rag.answer import evidence
    from rag.answer.check import check
    from rag.config import settings

    os.environ["LRC_SENTENCE_CACHE"] = "20000" if cache else "0"
    lib.embedder._sentences.clear()
    quote_s, check_s = [], []
    for q in queries:
        hits = lib.search(q["question"], k=6)
        t0 = time.perf_counter()
        ev = evidence.select(lib.embedder, q["question"], hits)
        t1 = time.perf_counter()
        answer = " ".join(s.text for s in ev.quotes) + " " + EXTRA
        check(lib.embedder, answer, evidence.context(ev, settings().context_tokens) if ev.ranked else hits, q["question"])
        quote_s.append(t1 - t0)
        check_s.append(time.perf_counter() - t1)
    return {"quote": statistics.mean(quote_s), "check": statistics.mean(check_s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="pairs of rounds (off, on)")
    ap.add_argument("--limit", type=int, default=None, help="the first N questions of each kind")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md as it is")
    args = ap.parse_args()
    from rag import answer_eval
    from rag.config import REPO_ROOT, settings
    from rag.library import Library

    pdf = settings().datasets_dir / "pdfs" / "R-admin.pdf"
    if not pdf.is_file():
        print(f"{pdf} is missing (the shared datasets; set LRC_DATASETS)", file=sys.stderr)
        return 1
    queries = answer_eval.set_queries(REPO_ROOT / "bench" / "data" / "answers", limit=args.limit)
    saved = os.environ.get("LRC_SENTENCE_CACHE")
    with tempfile.TemporaryDirectory(prefix="bench-quote-") as tmp:
        lib = Library(Path(tmp) / "index")
        print(f"ingest: {lib.ingest([str(pdf)]).summary()}", flush=True)
        one_round(lib, queries[:3], cache=False)  # warm-up: models loaded, first-call costs paid
        rows = {False: [], True: []}
        for r in range(args.rounds):
            for cache in (False, True):
                got = one_round(lib, queries, cache)
                rows[cache].append(got)
                print(f"round {r + 1}, cache {'on' if cache else 'off'}: quote {got['quote'] * 1000:.0f} ms, "
                      f"check {got['check'] * 1000:.0f} ms per question", flush=True)
    if saved is None:
        os.environ.pop("LRC_SENTENCE_CACHE", None)
    else:
        os.environ["LRC_SENTENCE_CACHE"] = saved
    med = {c: {k: statistics.median(x[k] for x in rows[c]) for k in ("quote", "check")} for c in rows}
    lines = [f"`{benchlib.command_line('quote', sys.argv[1:])}`, {benchlib.today()}; {benchlib.machine_note()}.", "",
             f"{len(queries)} different questions on R-admin.pdf, {args.rounds} rounds each way; mean ms per question "
             "(median over rounds).", "",
             "| LRC_SENTENCE_CACHE | the quote (select) | the check | both |", "|---|---:|---:|---:|"]
    for cache in (False, True):
        m = med[cache]
        lines.append(f"| {'20000 (default)' if cache else '0 (off)'} | {m['quote'] * 1000:.0f} | "
                     f"{m['check'] * 1000:.0f} | {(m['quote'] + m['check']) * 1000:.0f} |")
    summary = {"questions": len(queries), **{("on" if c else "off"): {k: round(v, 4) for k, v in med[c].items()}
                                             for c in med}}
    return benchlib.report(TITLE, lines, summary, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
