"""`python -m rag index PATH...`: add files and folders (recursive) to the library; with --background, queue
them as a job for `rag worker` (``rag.jobs``) instead."""
from __future__ import annotations

import argparse
import sys
import time

from rag.ingest.loaders.formats import short_list

HELP = f"index files and folders (recursive): {short_list()} (scans and images by OCR)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="files or folders")
    p.add_argument("--resume", action="store_true", help="also index what an interrupted run left out")
    p.add_argument("--rebuild", action="store_true",
                   help="embed the whole library again with the configured model (a shared library of another model)")
    p.add_argument("--index-dir", help="index folder or PostgreSQL URI (default: LRC_STORE, else settings().index_dir)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--background", action="store_true",
                   help="queue the paths as a job for `rag worker` instead of indexing here (`rag jobs` shows it)")


class ProgressBar:
    def __init__(self, stream=None, quiet: bool = False):
        self.stream, self.quiet = stream or sys.stderr, quiet  # sys.stderr as it is now, not at import
        self.tty = self.stream.isatty()
        self.last = 0.0

    def __call__(self, p) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty or now - self.last > 5 or p.done == p.total or p.stage == "ocr" and p.step in (1, p.steps):
            self.last = now
            width = 30
            filled = int(width * p.done / p.total) if p.total else width
            what = p.describe() if p.stage == "ocr" else f"{p.stage:9s} {p.file[:40]}"
            line = f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} {what[:60]}"
            self.stream.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


def open_library(args):
    from rag.config import settings
    from rag.library import Library

    if getattr(args, "index_dir", None):
        s = settings()
        return Library(args.index_dir, s.embed_model, s.max_file_mb)
    return Library.shared()


def run(args: argparse.Namespace) -> int:
    from rag.cmd import exit_status
    from rag.store import StoreError

    try:
        lib = open_library(args)
        if args.background:
            return _enqueue(lib, args)
        if args.rebuild:
            bar = ProgressBar(quiet=args.quiet)
            report = lib.rebuild(progress=bar)
            bar.close()
            print(report.summary())
            print(lib.stats().summary())
            if not args.paths:
                return 0
        return _index(lib, args)
    except StoreError as exc:
        print(f"index: {exc}", file=sys.stderr)
        return exit_status(exc)


def _enqueue(lib, args: argparse.Namespace) -> int:
    """--background: one job in the library's queue (absolute paths: what a worker will see)."""
    from pathlib import Path

    from rag.jobs import open_queue

    if args.rebuild:
        print("index: --rebuild runs here only (not with --background)", file=sys.stderr)
        return 2
    paths = _wanted(lib, args, [str(Path(p).expanduser().resolve()) for p in args.paths])
    if not paths:
        return 2
    job = open_queue(lib).enqueue(paths, lib.embed_model)
    print(f"queued job {job.id} ({len(paths)} path(s)): a `rag worker` runs it; `rag jobs` shows its progress, "
          f"`rag jobs cancel {job.id}` cancels it")
    return 0


def _wanted(lib, args: argparse.Namespace, paths: list[str]) -> list[str]:
    """The paths given, and with --resume what an interrupted run left out; [] (said why) for none."""
    if args.resume:
        paths += [p for p in lib.pending() if p not in paths]
    if not paths:
        print("nothing to index: give files or folders (or --resume)", file=sys.stderr)
    return paths


def _index(lib, args: argparse.Namespace) -> int:
    paths = _wanted(lib, args, list(args.paths))
    if not paths:
        return 2
    bar = ProgressBar(quiet=args.quiet)
    from rag.jobs.here import ingest_here

    report = ingest_here(lib, paths, progress=bar)
    bar.close()
    for f in report.added:
        print(f"added      {f}")
    for f in report.updated:
        print(f"updated    {f}")
    for f, reason in report.failed:
        print(f"FAILED     {reason}")
    for line in report.warning_lines():
        print(f"NOTE       {line}")
    for line in report.skipped_lines():
        print(f"skipped    {line}")
    print(report.summary())
    st = lib.stats()
    print(st.summary())
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0
