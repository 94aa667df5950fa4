"""`python -m rag query "..." -k N --mode M`: the ranked chunks for a question."""
from __future__ import annotations

import argparse
import json

from rag.cmd.index import open_library
from rag.schema import Mode

HELP = "search the library: ranked chunks with score, source and page"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question")
    p.add_argument("-k", type=int, default=None, help="number of chunks (default: settings().top_k)")
    p.add_argument("--mode", choices=Mode.values(search_only=True), default=None)
    p.add_argument("--json", action="store_true", help="one JSON object per hit")
    p.add_argument("--index-dir", help="index folder (default: settings().index_dir)")


def run(args: argparse.Namespace) -> int:
    from rag.config import settings

    lib = open_library(args)
    k = args.k or settings().top_k
    mode = args.mode or settings().retrieval_mode
    hits = lib.search(args.question, k=k, mode=mode)
    if not hits:
        print("no results (is the library empty? see `python -m rag stats`)")
        return 0
    for h in hits:
        if args.json:
            print(json.dumps({"rank": h.rank, "score": h.score, "scores": h.scores, "source": h.chunk.source,
                              "page": h.chunk.page, "heading": h.chunk.heading, "text": h.chunk.text}))
            continue
        section = f"  § {h.chunk.heading}" if h.chunk.heading and h.chunk.page else ""  # else the citation has it
        print(f"#{h.rank}  {h.score:.3f}  {h.chunk.citation()}{section}")
        text = " ".join(h.chunk.text.split())
        print(f"    {text[:300]}{'...' if len(text) > 300 else ''}")
    return 0
