"""`python -m rag watch DIR...`: sync the folders into the library, then keep it current with them (files
added, changed, renamed or removed; a folder that disappears is reported, its documents kept) until
Ctrl-C. One line per thing done."""
from __future__ import annotations

import argparse
import sys

HELP = "watch folders: index what is added or changed, re-use renamed files, remove deleted ones (until Ctrl-C)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="+", help="folders to watch (recursive)")
    p.add_argument("--index-dir", help="index folder or PostgreSQL URI (default: LRC_STORE, else settings().index_dir)")
    p.add_argument("--debounce", type=int, default=1600, metavar="MS",
                   help="longest time a burst of changes is gathered before it is indexed (default 1600 ms)")


def _say(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rag.cmd import exit_status
    from rag.cmd.index import open_library
    from rag.store import StoreError
    from rag.watch import Watcher

    not_folders = [f for f in args.folders if Path(f).exists() and not Path(f).is_dir()]
    if not_folders:
        print(f"watch: not a folder: {', '.join(not_folders)} (index single files with `rag index`)", file=sys.stderr)
        return 2
    try:
        watcher = Watcher(args.folders, open_library(args), say=_say, debounce_ms=max(1, args.debounce))
        _say(f"library   {watcher.library.stats().summary()}")
        watcher.run()
    except KeyboardInterrupt:
        _say("stopped")
    except StoreError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return exit_status(exc)
    return 0
