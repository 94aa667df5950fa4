"""`python -m rag run --docs PATH... --queries Q.jsonl -k 5 --out RUN.json`: a retrieval run over real
files with the chat's default settings; RUN.json maps each query id to its ranked chunk texts
(score it with ../shared/tools/gold_hit.py RUN.json BEIR_DIR)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.schema import Mode

HELP = "index files into a fresh store and write each query's ranked chunk texts to a JSON run file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", nargs="+", required=True, help="files or folders")
    p.add_argument("--queries", required=True, help='JSONL: {"_id", "text"} per line')
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--out", required=True, help="RUN.json to write")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None,
                   help="default: the chat's (settings().retrieval_mode)")
    p.add_argument("--index-dir", help="reuse/keep the index here instead of a fresh temporary one")


def run(args: argparse.Namespace) -> int:
    from rag.evaluation import retrieval_run

    results, info = retrieval_run(args.docs, args.queries, k=args.k, mode=args.mode, index_dir=args.index_dir)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(results)} queries -> {args.out}")
    print(f"chunks: {info['chunks']}, average {info['avg_chunk_tokens']} embedder tokens (max {info['max_chunk_tokens']})")
    print(f"model load {info['model_load_s']} s; ingest {info['ingest_s']} s; per query {info['query_ms_mean']} ms mean, {info['query_ms_p95']} ms p95")
    print(json.dumps(info))
    return 0
