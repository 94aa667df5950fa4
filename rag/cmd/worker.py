"""`python -m rag worker`: take ingest jobs from the library's queue and run them (``rag.jobs.worker``).

Any number of workers, on any machine that reaches the library (LRC_STORE: the shared PostgreSQL; or
the embedded library's folder on this machine) and sees the jobs' files at the same paths. SIGTERM or
Ctrl-C stops it after the current batch (its job goes back to the queue); a second Ctrl-C stops at once.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

HELP = "run queued ingest jobs (rag index --background) until stopped; --once: until the queue is empty"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="run the waiting jobs, then exit (scripts, tests)")
    p.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                   help="how long a job stays this worker's without a renewal (renewed while it works; a killed "
                        "worker's job is taken again after it); default 60")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                   help="how often an idle worker looks for a job; default 2")
    p.add_argument("--nice", type=int, default=None, metavar="N",
                   help="run at this niceness (Unix): answers on the same machine get the cores first (TTFT 1.06x "
                        "of idle at 10, 1.50x at 0: docs/BENCHMARKS.md, \"Answering while a worker ingests\"); an "
                        "idle machine's cores are the worker's either way; default LRC_BACKGROUND_NICE (10), 0 to "
                        "keep the shell's")
    p.add_argument("--index-dir", help="index folder or PostgreSQL URI (default: LRC_STORE, else settings().index_dir)")


def _on_signals(worker) -> None:
    """SIGTERM and the first Ctrl-C stop the worker after its current batch; a second Ctrl-C at once."""
    def stop(signum, frame):
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"[{worker.id}] stopping after the current batch", file=sys.stderr, flush=True)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run(args: argparse.Namespace) -> int:
    from rag.cmd import exit_status
    from rag.cmd.index import open_library
    from rag.config import settings
    from rag.jobs import WorkerRefused, open_queue
    from rag.jobs.worker import JobWorker
    from rag.store import StoreError

    nice = settings().background_nice if args.nice is None else args.nice
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)  # before any thread or loader process: they inherit it
    try:
        lib = open_library(args)
        queue = open_queue(lib)
        worker = JobWorker(lib, queue, args.lease, args.poll)
        _on_signals(worker)
        worker.say(f"working for {lib.backend.location} with embedding model '{worker.model}'"
                   + (" until the queue is empty" if args.once else ""))
        try:
            ran = worker.run(once=args.once)
        finally:
            queue.close()
        worker.say(f"stopped after {ran} job(s)")
        return 0
    except StoreError as exc:
        print(f"worker: refused: {exc}" if isinstance(exc, WorkerRefused) else f"worker: {exc}", file=sys.stderr)
        return exit_status(exc)
