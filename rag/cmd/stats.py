"""`python -m rag stats`: what the library holds."""
from __future__ import annotations

import argparse

from rag.cmd.index import open_library

HELP = "show the library: files, chunks, model, files missing from an interrupted run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", action="store_true", help="list the indexed files")
    p.add_argument("--index-dir", help="index folder (default: settings().index_dir)")


def run(args: argparse.Namespace) -> int:
    lib = open_library(args)
    st = lib.stats()  # no model load needed
    print(f"index:  {st.index_dir}")
    print(f"model:  {st.model or '(none yet)'}")
    print(f"files:  {st.files}")
    print(f"chunks: {st.chunks}")
    if st.missing:
        print(f"missing ({len(st.missing)}, an interrupted run left them out; `python -m rag index --resume`):")
        for p in st.missing:
            print(f"  {p}")
    if args.files:
        for e in lib.files():
            extra = f", {e.pages} pages" if e.pages else ""
            if e.contents_pages:
                extra += f", contents/index pages skipped: {e.contents_pages}"
            print(f"  {e.path}  ({e.chunks} chunks{extra})")
    return 0
