"""`python -m rag bench claims`: how well the sentence check (rag.answer.check) catches claims the
passages do not make, from sentences labelled by reading (bench/data/claims; how: its README).

    python -m rag bench claims                      # the table: per split, unsupported caught and marks right
    python -m rag bench claims -- --show            # also every sentence the check gets wrong
    python -m rag bench claims -- collect --dataset bench/data/unseen/openssh-client --limit 8 --out A.jsonl
    python -m rag bench claims -- collect --docs R-FAQ.pdf --queries Q.jsonl --split dev --document rfaq --out A.jsonl
    python -m rag bench claims -- density A.jsonl B.jsonl --dataset bench/data/unseen/openssh-client   # facts per sentence

``collect`` answers questions through the chat's pipeline at default settings and writes one line per
answer: the question, the retrieval query, the quoted sentences, the passages the model was given (in
its prompt's order, so [n] is ``passages[n-1]``), the model's text as the check receives it, and the
text as the user reads it. Labels (``labels.jsonl``) name an answer by ``id`` and a sentence by its
index in ``rag.text.sentence_spans`` of that text; scoring runs today's check on the stored answers.

A labelled unsupported sentence is *caught* when the check marks it, or leaves it out as a repeat of
the quote (the user does not read it); a *mark* is a sentence the check marks unsupported, *right* when
its label is unsupported.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from rag.config import REPO_ROOT

CLAIMS = REPO_ROOT / "bench" / "data" / "claims"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ collect
async def _answer(question: str, history: list, options, lib) -> dict:
    from rag import pipeline as pl
    from rag.answer.guard import LoopGuard, finish, tidy_fences

    rec = {"query": question, "quoted": [], "passages": [], "raw": "", "answer": "", "rendered": "",
           "abstained": False, "cut": False}
    async for ev in pl.answer(question, history, options, lib=lib):
        if isinstance(ev, pl.Retrieved):
            rec["query"] = ev.query
        elif isinstance(ev, pl.NothingFound) and not ev.answering:
            rec["abstained"] = True
        elif isinstance(ev, pl.Quoted):
            rec["quoted"] = [t for t, _ in ev.quotes]
        elif isinstance(ev, pl.Token):
            rec["raw"] += ev.text
        elif isinstance(ev, pl.Revised):
            rec["rendered"], rec["cut"] = ev.text, ev.cut
        elif isinstance(ev, pl.Sources):
            rec["passages"] = [h.chunk.text for h in ev.used]
    guard = LoopGuard()
    guard.feed(rec["raw"])
    rec["answer"] = finish(tidy_fences(guard.kept if guard.looped else rec["raw"]), cut=rec["cut"])
    return rec


def collect(args: argparse.Namespace) -> int:
    from rag import answer_eval, pipeline as pl
    from rag.config import settings
    from rag.library import Library

    jobs = []  # (document name, split, docs, queries)
    for d in args.dataset:
        d = Path(d)
        qs = answer_eval.set_queries(d, args.split, args.limit)
        split = next((r.get("split", "dev") for rows in answer_eval.read_set(d).values() for r in rows), "dev")
        jobs.append((d.name, split, answer_eval.documents(d, settings().datasets_dir), qs))
    if args.docs:
        qs = [q for q in read_jsonl(Path(args.queries)) if args.split in ("all", q.get("split", "dev"))][:args.limit]
        jobs.append((args.document, args.split, args.docs,
                     [{"id": str(q.get("id", q.get("_id"))), "question": q.get("question", q.get("text", "")),
                       "history": q.get("history") or []} for q in qs]))
    out = Path(args.out)
    done = {r["id"] for r in read_jsonl(out)} if out.exists() else set()
    options = pl.Options().updated({"max_new_tokens": args.max_tokens})
    for name, split, docs, queries in jobs:
        with tempfile.TemporaryDirectory(prefix="rag-claims-") as tmp:
            lib = Library(Path(tmp))
            print(f"== {name}: {lib.ingest(docs).summary()}", flush=True)

            async def go() -> None:
                from engines import registry

                try:
                    for q in queries:
                        if q["id"] in done:
                            continue
                        rec = await _answer(q["question"], q["history"], options, lib)
                        row = {"id": q["id"], "document": name, "split": split, "question": q["question"],
                               "history": q["history"], **rec}
                        with out.open("a", encoding="utf-8") as f:
                            f.write(json.dumps(row, ensure_ascii=False) + "\n")
                        print(f"{q['id']}: {rec['answer'][:90]!r}", flush=True)
                finally:
                    await registry.close_all()

            asyncio.run(go())
    return 0


# ------------------------------------------------------------------------------------ score
def outcomes(answers: list[dict], module: str | None = None) -> tuple[dict[str, tuple[str, list]], set[str]]:
    """answer id -> (its text, (start, end, what the check does with it) for each of its sentences: "marked",
    "left out" (a repeat of the quote), "passed" (supported or not judged)); and the answers whose text the
    user no longer reads (the check supports none of it: ``render`` says so in one line). ``module``: a file holding another version of
    rag/answer/check.py (e.g. ``git show REV:rag/answer/check.py > old.py``), to measure it on the same labels."""
    import importlib.util

    from rag.embedder import Embedder

    if module:
        spec = importlib.util.spec_from_file_location("check_under_test", module)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclasses look their module up
        spec.loader.exec_module(mod)
        check, render = mod.check, mod.render
    else:
        from rag.answer.check import check, render
    from rag.schema import Chunk, Hit
    from rag.text import sentence_spans

    emb = Embedder.get()
    out, hidden = {}, set()
    for a in answers:
        hits = [Hit(Chunk(i, t, a["document"]), 1.0, i + 1) for i, t in enumerate(a["passages"])]
        checked = check(emb, a["answer"], hits, a["query"], a["quoted"])
        spans = sentence_spans(a["answer"])  # one Checked per span
        out[a["id"]] = (a["answer"], [(x, y, "left out" if c.repeats else "passed" if c.supported else "marked")
                                      for (x, y), c in zip(spans, checked)])
        if checked and not any(c.text in render(checked) for c in checked if c.text.strip() and not c.repeats):
            hidden.add(a["id"])
    return out, hidden


def outcome(r: dict, got: dict) -> str | None:
    """What the check does with the labelled sentence ``r``: its outcome at its index when that sentence is
    still there; else (the sentences are split otherwise since it was labelled: a code block is apart from
    its lead-in since 2026-12-07) the pieces of the answer that overlap it: marked if one is, left out if
    all are, else passed."""
    answer, spans = got.get(r["id"], ("", []))
    k = r["index"]
    if k < len(spans) and answer[spans[k][0]:spans[k][1]] == r["sentence"].strip():
        return spans[k][2]
    at = answer.find(r["sentence"].strip())
    if at < 0:
        return spans[k][2] if k < len(spans) else None
    pieces = [o for x, y, o in spans if x < at + len(r["sentence"].strip()) and y > at]
    return "marked" if "marked" in pieces else "left out" if pieces and set(pieces) == {"left out"} else "passed"


def figures(labels: list[dict], got: dict) -> dict:
    bad = [r for r in labels if r["label"] == "unsupported"]
    marked = [r for r in labels if outcome(r, got) == "marked"]
    caught = [r for r in bad if outcome(r, got) in ("marked", "left out")]
    right = [r for r in marked if r["label"] == "unsupported"]
    return {"sentences": len(labels), "unsupported": len(bad), "caught": len(caught), "marks": len(marked),
            "marks_right": len(right), "recall": round(len(caught) / len(bad), 3) if bad else None,
            "precision": round(len(right) / len(marked), 3) if marked else None}


def score(args: argparse.Namespace) -> int:
    answers = read_jsonl(Path(args.answers))
    labels = [r for r in read_jsonl(Path(args.labels)) if args.split in ("all", r["split"])]
    got, hidden = outcomes([a for a in answers if a["id"] in {r["id"] for r in labels}], args.check)
    rows = {}
    for split in ("held-out", "dev"):
        of = [r for r in labels if r["split"] == split]
        if of:
            rows[split] = figures(of, got)
            for doc in sorted({r["document"] for r in of}):
                rows[f"{split}: {doc}"] = figures([r for r in of if r["document"] == doc], got)
    print("| split / document | sentences | unsupported | caught | unsupported caught | marks | marks right |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, f in rows.items():
        print(f"| {name} | {f['sentences']} | {f['unsupported']} | {f['caught']} | {f['recall']} | {f['marks']} "
              f"| {f['precision']} |")
    for split in ("held-out", "dev"):
        ids = {r["id"] for r in labels if r["split"] == split}
        if ids:
            lost = [r for r in labels if r["id"] in hidden & ids and r["label"] == "supported"
                    and not r["reason"].startswith("no claim")]
            print(f"{split}: {len(hidden & ids)} of {len(ids)} answers shown as one line (nothing in them supported); "
                  f"sentences labelled supported (claims) they held: {len(lost)}")
    if args.show:
        for r in labels:
            o = outcome(r, got)
            if (r["label"] == "unsupported") != (o in ("marked", "left out")):
                print(f"\n[{r['split']} {r['id']}#{r['index']} label={r['label']} check={o}] {r['sentence']}\n"
                      f"   reason: {r['reason']}")
    print(json.dumps(rows))
    return 0


def density(args: argparse.Namespace) -> int:
    """Facts per sentence of answers made with different settings (one answers file each, the questions
    they share): sentences the check supports (its marks measured above) per sentence the user would read,
    and whether the expected fact is in the model's own text (the quote aside)."""
    from rag import answer_eval
    from rag.answer.check import check, render
    from rag.embedder import Embedder
    from rag.schema import Chunk, Hit

    runs = {f: {a["id"]: a for a in read_jsonl(Path(f))} for f in args.files}
    common = set.intersection(*(set(r) for r in runs.values()))
    expected = {}
    for d in args.dataset:
        for rows in answer_eval.read_set(d).values():
            expected.update({str(r["id"]): r for r in rows})
    emb = Embedder.get()
    print("| answers | questions | sentences / answer | supported / answer | supported share | fact in the model's text "
          "| shown as one line |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f, run in runs.items():
        sent = sup = fact = one = asked = 0
        for aid in sorted(common):
            a = run[aid]
            hits = [Hit(Chunk(i, t, a["document"]), 1.0, i + 1) for i, t in enumerate(a["passages"])]
            checked = [c for c in check(emb, a["answer"], hits, a["query"], a["quoted"]) if c.judged]
            sent, sup = sent + len(checked), sup + sum(c.supported for c in checked)
            one += bool(checked) and render(checked).startswith("*The model's own answer is left out")
            row = expected.get(aid, {})
            if row.get("must_include_any"):
                asked += 1
                fact += answer_eval.fact_hit(a["answer"], row["must_include_any"], row.get("must_match_case", False))
        n = len(common)
        print(f"| {Path(f).name} | {n} | {sent / n:.1f} | {sup / n:.2f} | {sup / max(sent, 1):.3f} | "
              f"{fact} of {asked} | {one} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv[:1] == ["collect"]:
        p = argparse.ArgumentParser(prog="rag bench claims collect")
        p.add_argument("--dataset", action="append", default=[], help="an answer set folder (repeatable)")
        p.add_argument("--docs", nargs="*", default=[], help="documents for --queries")
        p.add_argument("--queries", help="query lines {id|_id, question|text, split?}")
        p.add_argument("--document", default="docs", help="the name --docs are recorded under")
        p.add_argument("--split", default="all")
        p.add_argument("--limit", type=int)
        p.add_argument("--max-tokens", type=int, help="the answer's length limit (default: LRC_MAX_NEW_TOKENS)")
        p.add_argument("--out", required=True)
        return collect(p.parse_args(argv[1:]))
    if argv[:1] == ["density"]:
        p = argparse.ArgumentParser(prog="rag bench claims density")
        p.add_argument("files", nargs="+", help="answers files (from collect) made with different settings")
        p.add_argument("--dataset", action="append", default=[], help="the answer sets (for the expected facts)")
        return density(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(prog="rag bench claims")
    p.add_argument("--answers", default=str(CLAIMS / "answers.jsonl"))
    p.add_argument("--labels", default=str(CLAIMS / "labels.jsonl"))
    p.add_argument("--show", action="store_true", help="print every sentence the check gets wrong")
    p.add_argument("--split", default="all", help="only this split's labels (dev, held-out)")
    p.add_argument("--check", metavar="FILE", help="measure this copy of rag/answer/check.py instead (an older one)")
    return score(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
