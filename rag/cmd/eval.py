"""`python -m rag eval --dataset DIR`: retrieval quality on a BEIR folder, through the real ingest path.

`python -m rag eval answers --dataset DIR [--run RUN.json] [--split dev]`: answer quality on a question
set (facts, follow-ups, unanswerable; rag.answer_eval): answers every question through the chat's
pipeline (or scores an existing RUN.json) and prints the figures per set and split."""
from __future__ import annotations

import argparse
import json

from rag.schema import STYLES, Mode

HELP = ("evaluate retrieval on a BEIR folder (recall, MRR, nDCG@10) or, with `answers`, answer quality on a "
        "question set (JSON last line)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=["retrieval", "answers"], default="retrieval")
    p.add_argument("--dataset", required=True, help="BEIR folder (retrieval) or answer set folder (answers)")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None,
                   help="retrieval mode (default: settings().retrieval_mode)")
    p.add_argument("-k", type=int, default=10, help="documents ranked per query (metrics use 10)")
    p.add_argument("--extra-docs", action="append", default=[], metavar="DIR",
                   help="a folder of real files added as unjudged distractors (repeatable)")
    p.add_argument("--index-dir", help="keep the eval index here (re-runs embed nothing); default: a temp folder")
    p.add_argument("--run", help="answers: score this RUN.json instead of answering")
    p.add_argument("--out", help="answers: write the RUN.json made here")
    p.add_argument("--split", default="all", help="answers: dev, held-out or all")
    p.add_argument("--engine", help="answers: onnx or foundry")
    p.add_argument("--model", help="answers: model name or id")
    p.add_argument("--style", choices=STYLES, help="answers: what an answer shows")


def run_answers(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rag import answer_eval
    from rag.cmd.run import answer_options
    from rag.config import settings

    if args.run:
        run = json.loads(Path(args.run).read_text(encoding="utf-8"))
    else:
        args.k = None if args.k == 10 else args.k  # -k defaults to 10 for retrieval; answers use LRC_TOP_K
        docs = answer_eval.documents(args.dataset, settings().datasets_dir)
        run = answer_eval.run_answers(docs, answer_eval.set_queries(args.dataset, args.split), answer_options(args),
                                      args.index_dir)
        if args.out:
            Path(args.out).write_text(json.dumps(run, indent=1, ensure_ascii=False), encoding="utf-8")
    figures = answer_eval.score(args.dataset, run)
    items = figures.pop("items")
    if args.split != "all":
        figures = {name: {k: v for k, v in f.items() if k == args.split} for name, f in figures.items()}
    print(answer_eval.table(figures))
    for i in items:
        if (i["set"] != "unanswerable" and not i.get("fact")) or i["loops"] or i["cut"]:
            print(f"  {i['id']}: fact={i.get('fact')} gold_in_passages={i.get('gold_in_passages')} "
                  f"abstained={i['abstained']} loops={i['loops']} cut={i['cut']}")
    print(json.dumps(figures))
    return 0


def run(args: argparse.Namespace) -> int:
    from rag.config import settings
    from rag.evaluation import evaluate

    if args.what == "answers":
        return run_answers(args)

    mode = args.mode or settings().retrieval_mode
    m = evaluate(args.dataset, mode=mode, k=args.k, extra_docs=args.extra_docs, index_dir=args.index_dir)
    print(f"{mode}: R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@10 {m['recall@10']:.3f}  "
          f"MRR@10 {m['mrr@10']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  ({m['queries']} queries, {m['chunks']} chunks)")
    print(json.dumps(m))
    return 0
