"""`python -m rag remove PATH`: take a file (or a folder's files) out of the library."""
from __future__ import annotations

import argparse

from rag.cmd.index import open_library

HELP = "remove a file or folder from the library (its chunks and vectors)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+")
    p.add_argument("--index-dir", help="index folder (default: settings().index_dir)")


def run(args: argparse.Namespace) -> int:
    lib = open_library(args)
    guide_was_removed = lib.guide_removed()
    status = 0
    for p in args.paths:
        n = lib.remove(p)
        if n:
            print(f"removed {p}: {n} chunks")
        else:
            print(f"not in the library: {p}")
            status = 1
    if lib.guide_removed() and not guide_was_removed:
        print("The bundled user guide will not be added back at chat start "
              "(index its folder again to restore it).")
    print(lib.stats().summary())
    return status
