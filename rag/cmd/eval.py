"""`python -m rag eval --dataset DIR`: retrieval quality on a BEIR folder, through the real ingest path.

`python -m rag eval answers --dataset DIR [--dataset DIR ...] [--run RUN.json] [--split dev] [--limit N]`:
answer quality on question sets (facts, follow-ups, unanswerable; rag.answer_eval): answers every
question through the chat's pipeline, each set's documents in their own fresh index (or scores an
existing RUN.json), and prints the figures per set and split; with several sets (or a folder of sets,
such as bench/data/unseen) also a row per document and an overall row."""
from __future__ import annotations

import argparse
import json

from rag.schema import STYLES, Mode

HELP = ("evaluate retrieval on a BEIR folder (recall, MRR, nDCG@10) or, with `answers`, answer quality on a "
        "question set (JSON last line)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=["retrieval", "answers"], default="retrieval")
    p.add_argument("--dataset", required=True, action="append",
                   help="BEIR folder (retrieval) or answer set folder (answers; repeatable, or a folder of sets)")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None,
                   help="retrieval mode (default: settings().retrieval_mode)")
    p.add_argument("-k", type=int, default=10, help="documents ranked per query (metrics use 10)")
    p.add_argument("--extra-docs", action="append", default=[], metavar="DIR",
                   help="a folder of real files added as unjudged distractors (repeatable)")
    p.add_argument("--index-dir", help="keep the eval index here (re-runs embed nothing); default: a temp folder")
    p.add_argument("--run", help="answers: score this RUN.json instead of answering")
    p.add_argument("--out", help="answers: write the RUN.json made here")
    p.add_argument("--split", default="all", help="answers: dev, held-out or all")
    p.add_argument("--limit", type=int, help="answers: only the first N facts, follow-ups and unanswerable of each set")
    p.add_argument("--engine", help="answers: onnx or foundry")
    p.add_argument("--model", help="answers: model name or id")
    p.add_argument("--style", choices=STYLES, help="answers: what an answer shows")


def run_answers(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rag import answer_eval
    from rag.cmd.run import answer_options
    from rag.config import settings

    sets = answer_eval.expand_sets(args.dataset)
    asked = {s: {q["id"] for q in answer_eval.set_queries(s, args.split, args.limit)} for s in sets}
    if args.run:
        run = json.loads(Path(args.run).read_text(encoding="utf-8"))
    else:
        args.k = None if args.k == 10 else args.k  # -k defaults to 10 for retrieval; answers use LRC_TOP_K
        run = {}
        for s in sets:
            if len(sets) > 1:
                print(f"== {s.name}", flush=True)
            docs = answer_eval.documents(s, settings().datasets_dir)
            run.update(answer_eval.run_answers(docs, answer_eval.set_queries(s, args.split, args.limit),
                                               answer_options(args), args.index_dir if len(sets) == 1 else None))
        if args.out:
            Path(args.out).write_text(json.dumps(run, indent=1, ensure_ascii=False), encoding="utf-8")
    by_document, out = {}, {}
    for s in sets:
        figures = answer_eval.score(s, run, asked[s] if args.limit or args.split != "all" else None)
        items = figures.pop("items")
        by_document[s.name] = items
        if args.split != "all":
            figures = {name: {k: v for k, v in f.items() if k == args.split} for name, f in figures.items()}
        if len(sets) > 1:
            print(f"\n{s.name}")
        print(answer_eval.table(figures))
        for i in items:
            if (i["set"] != "unanswerable" and not i.get("fact")) or i["loops"] or i["cut"]:
                print(f"  {i['id']}: fact={i.get('fact')} gold_in_passages={i.get('gold_in_passages')} "
                      f"abstained={i['abstained']} loops={i['loops']} cut={i['cut']}")
        out[s.name] = figures
    if len(sets) > 1:
        table, rows = answer_eval.documents_table(by_document)
        print("\nPer document" + (f" (first {args.limit} of each kind)" if args.limit else "") + "\n" + table)
        out = {"documents": rows, "sets": out}
    print(json.dumps(out if len(sets) > 1 else out[sets[0].name]))
    return 0


def run(args: argparse.Namespace) -> int:
    from rag.config import settings
    from rag.evaluation import evaluate

    if args.what == "answers":
        return run_answers(args)

    if len(args.dataset) != 1:
        raise SystemExit("retrieval evaluation takes one --dataset")
    args.dataset = args.dataset[0]
    mode = args.mode or settings().retrieval_mode
    m = evaluate(args.dataset, mode=mode, k=args.k, extra_docs=args.extra_docs, index_dir=args.index_dir)
    print(f"{mode}: R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@10 {m['recall@10']:.3f}  "
          f"MRR@10 {m['mrr@10']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  ({m['queries']} queries, {m['chunks']} chunks)")
    print(json.dumps(m))
    return 0
