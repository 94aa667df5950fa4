"""Small vs large: two engine/model choices answering the same questions from the same passages.

    python -m rag bench compare --dataset bench/data/answers --split held-out --limit 12 \\
        --a onnx:smollm2 --b foundry: [--index-dir DIR] [--max-tokens N] [--write-benchmarks]
    python -m rag bench compare --queries Q.jsonl --docs FILE_OR_FOLDER... --a onnx:smollm2 --b onnx:phi-4-mini

Every question goes through ``rag.compare.compare`` (what `python -m rag compare` and the chat's
compare mode run): one retrieval and one quote, then both answers generated at the same time, so
both sides read the same passages and share the machine the same way. ``--a`` / ``--b`` are
ENGINE[:MODEL] ("foundry:" = the service's default model).

Questions: ``--dataset DIR`` (an answer set as for `rag eval answers`: its facts.jsonl questions,
``--split`` dev | held-out | all, documents from its documents.txt), or ``--queries Q.jsonl`` (lines
``{"id", "question", "history"?, "must_include_any"?}``) with ``--docs``. ``--index-dir`` keeps or
reuses the index (unchanged files are not embedded again); default: a temporary folder.

If --a or --b names foundry and no Foundry endpoint is configured (FOUNDRY_BASE_URL, the launcher's
state file, `foundry service status`), a real Foundry Local is started for the run with the
provisioned ``--foundry-model`` (default smollm2; bench/benchlib.py) and stopped at the end.

Both engines are warmed with one unmeasured comparison first. Prints a Markdown table with a row per
side: answers, median time to first token, median decode tokens/s, median answer length (tokens and
words of the model's answer), and where questions carry ``must_include_any`` the fact hit of what
the user reads (quote + answer, ``Done.text``) and of the model's answer alone, plus the loops and
mid-word cuts (rag.answer_eval helpers); then how often B started / decoded faster than A. The last
line is a JSON summary. ``--write-benchmarks`` writes the section "Small vs large: compare two models
(issue 12)" of docs/BENCHMARKS.md with the table, the date, the machine and the command.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from rag import answer_eval  # noqa: E402
from rag.config import settings  # noqa: E402

SECTION = "Small vs large: compare two models (issue 12)"
INTRO = """**Question:** what does a second model change for the user: how soon its answer starts, how fast it
writes, how long it is, and whether it holds the fact asked for? **Command:** `python -m rag bench compare
--a ENGINE[:MODEL] --b ENGINE[:MODEL]` with `--dataset DIR` (or `--queries Q.jsonl --docs ...`) (bench/bench_compare.py).
Each question goes through `rag.compare` (as `python -m rag compare` and the chat's compare mode): one
retrieval and one quote, then both answers generated at the same time from the same passages (so both sides
share the CPU, as in the chat), after one unmeasured warm-up of both. Fact hit: the set's `must_include_any`
found in what the user reads (the quote, shown once for both, plus the model's answer) and in the model's
answer alone; loops and cuts: `rag.answer_eval.repeats_a_sentence` / `cut_mid_word`. Decode = tokens after
the first over the time after the first. One subsection per pair of models (the newest run of each pair)."""


# ------------------------------------------------------------------------------------ questions
def questions(args) -> tuple[list[dict], list[Path]]:
    """(rows {"id", "question", "history", "must_include_any"?}, documents)."""
    if args.dataset:
        rows = [r for r in answer_eval.read_set(args.dataset)["facts"]
                if args.split in ("all", r.get("split", "dev"))]
        docs = answer_eval.documents(args.dataset, settings().datasets_dir)
        rows = [{"id": str(r["id"]), "question": r["question"], "history": r.get("history") or [],
                 "must_include_any": r.get("must_include_any")} for r in rows]
    else:
        if not args.queries or not args.docs:
            raise SystemExit("give --dataset DIR, or --queries Q.jsonl with --docs")
        raw = {}
        for line in Path(args.queries).read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                raw[str(r.get("id", r.get("_id")))] = r
        rows = [dict(q, must_include_any=raw[q["id"]].get("must_include_any"))
                for q in answer_eval.read_queries(args.queries)
                if args.split in ("all", raw[q["id"]].get("split", "dev"))]
        docs = [Path(d) for d in args.docs]
    return (rows[:args.limit] if args.limit else rows), docs


# ------------------------------------------------------------------------------------ running
async def one(question: dict, a, b, lib) -> dict:
    """One comparison: per side its Done / Failed and the model's own answer text."""
    from rag import pipeline as pl
    from rag.compare import Side, Verdict, compare

    rec = {"id": question["id"], "abstained": None, "sides": {}, "verdict": None}
    text = {"A": "", "B": ""}
    async for ev in compare(question["question"], question["history"], a, b, lib=lib):
        if isinstance(ev, pl.NothingFound) and not ev.answering:
            rec["abstained"] = ev.message
        elif isinstance(ev, Side):
            e = ev.event
            if isinstance(e, pl.Token):
                text[ev.side] += e.text
            elif isinstance(e, pl.FellBack):
                text[ev.side] = ""
            elif isinstance(e, pl.Revised):
                text[ev.side] = e.text
            elif isinstance(e, pl.Done):
                u = e.usage
                rec["sides"][ev.side] = {"engine": e.engine, "model": e.model, "ttft_s": u.time_to_first_token,
                                         "tok_s": u.tokens_per_second, "answer_tokens": u.completion_tokens,
                                         "prompt_tokens": u.prompt_tokens, "total_s": e.timings.get("total"),
                                         "shown": e.text, "answer": text[ev.side]}
            elif isinstance(e, pl.Failed):
                rec["sides"][ev.side] = {"error": e.text}
        elif isinstance(ev, Verdict):
            rec["verdict"] = ev.text
    return rec


async def run_all(rows: list[dict], a, b, lib, log=print) -> list[dict]:
    from dataclasses import replace

    from engines import registry

    try:
        t = time.perf_counter()
        await one(rows[0], replace(a, max_new_tokens=16), replace(b, max_new_tokens=16), lib)  # warm both
        log(f"warm-up {time.perf_counter() - t:.1f}s")
        out = []
        for i, q in enumerate(rows, 1):
            rec = await one(q, a, b, lib)
            rec["must_include_any"] = q.get("must_include_any")
            out.append(rec)
            s = rec["sides"]
            log(f"[{i}/{len(rows)}] {q['id']}: " + (f"abstained ({rec['abstained'][:60]})" if rec["abstained"] else
                " | ".join(f"{k}: " + (f"TTFT {v['ttft_s'] or 0:.2f}s {v['tok_s']:.1f} tok/s {v['answer_tokens']} tok"
                                        if "error" not in v else f"failed: {v['error'][:80]}") for k, v in sorted(s.items()))))
        return out
    finally:
        await registry.close_all()


# ------------------------------------------------------------------------------------ figures
def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def figures(records: list[dict], side: str) -> dict:
    done = [r["sides"][side] for r in records if "error" not in r["sides"].get(side, {"error": 1})]
    failed = sum(1 for r in records if "error" in r["sides"].get(side, {}))
    judged = [(r, r["sides"].get(side, {})) for r in records if r.get("must_include_any") and not r["abstained"]]
    f = {"answered": len(done), "failed": failed,
         "engine": done[0]["engine"] if done else None, "model": done[0]["model"] if done else None,
         "ttft_s": _median(d["ttft_s"] for d in done), "tok_s": _median(d["tok_s"] for d in done),
         "answer_tokens": _median(d["answer_tokens"] for d in done),
         "answer_words": _median(len(answer_eval.words(d["answer"])) for d in done),
         "loops": sum(answer_eval.repeats_a_sentence(d["shown"]) for d in done),
         "cut": sum(answer_eval.cut_mid_word(d["shown"]) for d in done)}
    if judged:
        f["fact_hit"] = sum(answer_eval.fact_hit(d.get("shown", ""), r["must_include_any"]) for r, d in judged)
        f["fact_hit_answer"] = sum(answer_eval.fact_hit(d.get("answer", ""), r["must_include_any"]) for r, d in judged)
        f["judged"] = len(judged)
    return f


def head_to_head(records: list[dict]) -> dict:
    both = [r["sides"] for r in records if all("error" not in r["sides"].get(s, {"error": 1}) for s in "AB")]
    ttft = [(s["A"]["ttft_s"], s["B"]["ttft_s"]) for s in both if s["A"]["ttft_s"] and s["B"]["ttft_s"]]
    speed = [(s["A"]["tok_s"], s["B"]["tok_s"]) for s in both if s["A"]["tok_s"] and s["B"]["tok_s"]]
    return {"both": len(both),
            "b_started_first": sum(b < a for a, b in ttft), "b_started_later": sum(b > a for a, b in ttft),
            "ttft_pairs": len(ttft),
            "b_decoded_faster": sum(b > a for a, b in speed), "b_decoded_slower": sum(b < a for a, b in speed),
            "speed_pairs": len(speed),
            "ttft_ratio_median": _median(b / a for a, b in ttft),
            "tok_s_ratio_median": _median(b / a for a, b in speed)}


def _s(x, fmt: str, unit: str = "") -> str:
    return "–" if x is None else f"{x:{fmt}}{unit}"


def table(records: list[dict], specs: dict[str, str]) -> str:
    n = len(records)
    lines = ["| side | choice (model as served) | answered | median TTFT | median decode | median answer tokens | "
             "median answer words | fact hit: quote + answer | fact hit: answer alone | loops | cut mid-word |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for side in "AB":
        f = figures(records, side)
        hit = lambda k: f"{f[k]} of {f['judged']}" if "judged" in f else "–"  # noqa: E731
        model = f" ({f['engine']} {f['model']})" if f["model"] else ""
        answered = f"{f['answered']} of {n}" + (f" ({f['failed']} failed)" if f["failed"] else "")
        lines.append(f"| {side} | `{specs[side]}`{model} | {answered} | {_s(f['ttft_s'], '.2f', ' s')} | "
                     f"{_s(f['tok_s'], '.1f', ' tok/s')} | {_s(f['answer_tokens'], 'g')} | {_s(f['answer_words'], 'g')} | "
                     f"{hit('fact_hit')} | {hit('fact_hit_answer')} | {f['loops']} | {f['cut']} |")
    return "\n".join(lines)


def head_to_head_line(h: dict) -> str:
    return (f"B started answering first in {h['b_started_first']} of {h['ttft_pairs']} questions (later in "
            f"{h['b_started_later']}; median TTFT ratio B/A {_s(h['ttft_ratio_median'], '.2f')}); B decoded faster "
            f"in {h['b_decoded_faster']} of {h['speed_pairs']} (slower in {h['b_decoded_slower']}; median tokens/s "
            f"ratio B/A {_s(h['tok_s_ratio_median'], '.2f')}).")


# ------------------------------------------------------------------------------------ main
def options(args):
    from engines import registry
    from rag import pipeline as pl
    from rag.compare import parse_choice

    out = []
    for spec in (args.a, args.b):
        engine, model = parse_choice(spec, [*registry.ENGINES, pl.AUTO])
        out.append(pl.Options(engine=engine, model=model, top_k=args.k or settings().top_k,
                              mode=args.mode or settings().retrieval_mode, temperature=args.temperature,
                              max_new_tokens=args.max_tokens or settings().max_new_tokens))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="Two engine/model choices on the same questions and passages.")
    p.add_argument("--dataset", help="answer set folder (facts.jsonl + documents.txt); default: bench/data/answers "
                                     "when --queries is not given")
    p.add_argument("--queries", help='JSONL: {"id", "question", "history"?, "must_include_any"?} per line')
    p.add_argument("--docs", nargs="+", help="with --queries: the files or folders to index")
    p.add_argument("--index-dir", help="keep / reuse the index here (default: a temporary folder)")
    p.add_argument("--split", default="held-out", help="with --dataset: dev, held-out or all (default held-out)")
    p.add_argument("--limit", type=int, default=12, help="first N questions (default 12; 0 = all)")
    p.add_argument("--a", default="onnx:smollm2", help="ENGINE[:MODEL] of side A (default onnx:smollm2)")
    p.add_argument("--b", default="foundry:", help="ENGINE[:MODEL] of side B (default foundry: its default model)")
    p.add_argument("--foundry-model", default="smollm2",
                   help="the provisioned model a Foundry Local started by this run serves (default smollm2)")
    p.add_argument("-k", type=int, help="passages per question (default LRC_TOP_K)")
    p.add_argument("--mode", help="retrieval mode (default LRC_RETRIEVAL_MODE)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, help="longest answer (default LRC_MAX_NEW_TOKENS)")
    p.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    if not args.queries and not args.dataset:
        args.dataset = str(REPO_ROOT / "bench" / "data" / "answers")
    try:
        a, b = options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, docs = questions(args)
    if not rows:
        print("no questions (check --split / --limit)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    service = benchlib.foundry_for([a.engine, b.engine], args.foundry_model)
    tmp = None
    try:
        from rag.library import Library

        index_dir = args.index_dir
        if not index_dir:
            tmp = tempfile.TemporaryDirectory(prefix="bench-compare-")
            index_dir = tmp.name
        lib = Library(Path(index_dir))
        print(f"ingest: {lib.ingest(docs).summary()}", flush=True)
        lib.search("warm up", 1)
        records = asyncio.run(run_all(rows, a, b, lib, log=lambda m: print(m, flush=True)))
    finally:
        if service is not None:
            service.stop()
        if tmp is not None:
            tmp.cleanup()
    specs = {"A": args.a, "B": args.b}
    tab, h = table(records, specs), head_to_head(records)
    abstained = sum(bool(r["abstained"]) for r in records)
    print()
    print(tab)
    print(head_to_head_line(h))
    if abstained:
        print(f"{abstained} of {len(records)} questions were not given to the models (the documents do not answer them).")
    seconds = time.perf_counter() - t0
    summary = {"bench": "compare", "a": args.a, "b": args.b, "questions": len(records), "abstained": abstained,
               "max_new_tokens": a.max_new_tokens, "top_k": a.top_k, "foundry_started": service is not None,
               "A": figures(records, "A"), "B": figures(records, "B"), "head_to_head": h, "seconds": round(seconds, 1)}
    if args.write_benchmarks:
        where = (f"Questions: `{Path(args.dataset).name}` facts, split {args.split}" if args.dataset
                 else f"Questions: `{args.queries}`") + (f", first {args.limit}" if args.limit else "")
        served = (f" Foundry Local was started for the run (`scripts/foundry_local.py`, `{service.model}`)."
                  if service is not None else "")
        body = "\n".join([
            f"**Command:** `{benchlib.command_line('compare', argv)}`",
            "",
            f"Run {benchlib.today()} ({round(seconds)} s in all), {benchlib.machine_note()}. {where}; "
            f"greedy (temperature {args.temperature:g}), top {a.top_k} passages, at most {a.max_new_tokens} answer "
            f"tokens.{served}",
            "",
            tab,
            "",
            head_to_head_line(h) + (f" {abstained} of {len(records)} questions were not given to the models "
                                    "(the documents do not answer them)." if abstained else ""),
        ])
        benchlib.write_section(SECTION, body, sub=f"`{args.a}` vs `{args.b}`", intro=INTRO)
        print(f"wrote the section '{SECTION}' of {benchlib.BENCHMARKS}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
