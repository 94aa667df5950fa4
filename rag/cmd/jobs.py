"""`python -m rag jobs`: the library's ingest jobs (state, progress, worker); `rag jobs cancel ID...`."""
from __future__ import annotations

import argparse
import sys
import time

HELP = "list the library's ingest jobs with their state and progress; `jobs cancel ID` cancels one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("list", "cancel"), default="list")
    p.add_argument("ids", nargs="*", type=int, help="job ids (cancel)")
    p.add_argument("--all", action="store_true", help="every job, not only the newest 20")
    p.add_argument("--index-dir", help="index folder or PostgreSQL URI (default: LRC_STORE, else settings().index_dir)")


def _age(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0, int(time.time() - t))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def show(jobs) -> None:
    print(f"{'ID':>5}  {'STATE':9}  {'FILES':>9}  {'AGE':>5}  {'WORKER':24}  WHAT")
    for j in jobs:
        what = j.current if j.state == "running" and j.current else j.error or j.summary or ", ".join(j.paths)
        if j.cancel_requested and j.state == "running":
            what = "cancelling... " + what
        print(f"{j.id:>5}  {j.state:9}  {j.progress():>9}  {_age(j.created_at):>5}  {(j.worker or '-')[:24]:24}  "
              f"{what}")  # the last column, whole: a path cut short names no file


def run(args: argparse.Namespace) -> int:
    from rag.cmd import exit_status
    from rag.cmd.index import open_library
    from rag.jobs import open_queue
    from rag.store import StoreError

    try:
        queue = open_queue(open_library(args))
        if args.action == "cancel":
            if not args.ids:
                print("jobs cancel: give the id of the job(s) to cancel (`rag jobs` lists them)", file=sys.stderr)
                return 2
            for job_id in args.ids:
                job = queue.cancel(job_id)
                print(f"job {job.id}: " + ("cancelled" if job.state == "cancelled" else
                                           "cancelling (its worker stops after the current batch)"
                                           if job.state == "running" else f"already {job.state}"))
            return 0
        jobs = queue.jobs(limit=10_000 if args.all else 20)
        if not jobs:
            print("no jobs (queue some with `rag index --background PATH...`)")
            return 0
        show(jobs)
        return 0
    except StoreError as exc:
        print(f"jobs: {exc}", file=sys.stderr)
        return exit_status(exc)
