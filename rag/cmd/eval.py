"""`python -m rag eval --dataset DIR`: retrieval quality on a BEIR folder, through the real ingest path."""
from __future__ import annotations

import argparse
import json

from rag.schema import Mode

HELP = "evaluate retrieval on a BEIR folder: recall@1/5/10, MRR@10, nDCG@10 (JSON last line)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels.tsv")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None,
                   help="retrieval mode (default: settings().retrieval_mode)")
    p.add_argument("-k", type=int, default=10, help="documents ranked per query (metrics use 10)")
    p.add_argument("--extra-docs", action="append", default=[], metavar="DIR",
                   help="a folder of real files added as unjudged distractors (repeatable)")
    p.add_argument("--index-dir", help="keep the eval index here (re-runs embed nothing); default: a temp folder")


def run(args: argparse.Namespace) -> int:
    from rag.config import settings
    from rag.evaluation import evaluate

    mode = args.mode or settings().retrieval_mode
    m = evaluate(args.dataset, mode=mode, k=args.k, extra_docs=args.extra_docs, index_dir=args.index_dir)
    print(f"{mode}: R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@10 {m['recall@10']:.3f}  "
          f"MRR@10 {m['mrr@10']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  ({m['queries']} queries, {m['chunks']} chunks)")
    print(json.dumps(m))
    return 0
