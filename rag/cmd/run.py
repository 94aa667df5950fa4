"""`python -m rag run --docs PATH... --queries Q.jsonl -k 5 --out RUN.json`: a retrieval run over real
files with the chat's default settings; RUN.json maps each query id to its ranked chunk texts
(score it with ../shared/tools/gold_hit.py RUN.json BEIR_DIR).

With ``--answer`` every query is answered through the chat's pipeline (default settings unless flags
say otherwise) and RUN.json maps each id to what the user would read, with the passages given to the
model, the citations, the unsupported sentences and the timings (``rag.answer_eval``). Query lines:
``{"id", "question", "history"?}`` (``_id`` / ``text`` accepted)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.cmd import add_choice_arguments
from rag.schema import Mode

HELP = "index files into a fresh store and write each query's ranked chunk texts to a JSON run file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", nargs="+", required=True, help="files or folders")
    p.add_argument("--queries", required=True, help='JSONL: {"_id", "text"} per line')
    p.add_argument("-k", type=int, default=None, help="passages (default: 5 for retrieval runs, LRC_TOP_K with --answer)")
    p.add_argument("--out", required=True, help="RUN.json to write")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None,
                   help="default: the chat's (settings().retrieval_mode)")
    p.add_argument("--index-dir", help="reuse/keep the index here instead of a fresh temporary one")
    p.add_argument("--answer", action="store_true", help="answer each query through the chat's pipeline")
    # --engine, --model, --temperature, --max-tokens, --style: Options' other choices (-k and --mode above serve both)
    add_choice_arguments(p, skip=("top_k", "mode"), prefix="with --answer: ")


def answer_options(args: argparse.Namespace):
    """pipeline.Options from the defaults, with the flags that were given."""
    from rag import pipeline as pl

    return pl.Options().updated({**vars(args), "top_k": args.k})


def run(args: argparse.Namespace) -> int:
    if args.answer:
        from rag.answer_eval import read_queries, run_answers

        results = run_answers(args.docs, read_queries(args.queries), answer_options(args), args.index_dir)
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"{len(results)} answers -> {args.out}")
        return 0
    from rag.evaluation import retrieval_run

    results, info = retrieval_run(args.docs, args.queries, k=args.k or 5, mode=args.mode, index_dir=args.index_dir)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(results)} queries -> {args.out}")
    print(f"chunks: {info['chunks']}, average {info['avg_chunk_tokens']} embedder tokens (max {info['max_chunk_tokens']})")
    print(f"model load {info['model_load_s']} s; ingest {info['ingest_s']} s; per query {info['query_ms_mean']} ms mean, {info['query_ms_p95']} ms p95")
    print(json.dumps(info))
    return 0
