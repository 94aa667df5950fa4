"""`python -m rag migrate --to TARGET [--from SOURCE]`: copy the library to PostgreSQL or back, vectors as stored."""
from __future__ import annotations

import argparse
import sys

HELP = "copy the library into PostgreSQL (--to postgresql://...) or back into a folder, without re-embedding"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, dest="target", help="a PostgreSQL URI or an index folder")
    p.add_argument("--from", dest="source", help="the library to copy (default: LRC_STORE, else the index folder)")


def run(args: argparse.Namespace) -> int:
    from rag.backends import is_database
    from rag.backends.migrate import migrate
    from rag.config import settings
    from rag.cmd import exit_status
    from rag.store import StoreError

    source = args.source or settings().library_location
    if str(source) == str(args.target):
        print("--to names the library being copied: give another target", file=sys.stderr)
        return 2
    try:
        done = migrate(source, args.target, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except StoreError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return exit_status(exc)
    print(done.summary())
    if is_database(args.target):
        print(f"To use it: LRC_STORE={args.target}")
    return 0
