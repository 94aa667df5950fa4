"""Ingest as a job run where it was asked for, and the chat server's own worker.

``ingest_here`` is how the chat's dropped files, its re-index, the watcher and ``rag index`` ingest: the
run is written to the library's queue as a job already running under this process's lease
(``SqlQueue.start``), then run by a ``JobWorker`` in the caller's thread. So every ingest shows in the
Library view and ``rag jobs`` with its progress, a Cancel there stops it between batches
(``IngestCancelled``), and should the process die, its lease runs out and a worker takes the job again and
completes it: a ``rag worker``, or the chat server's own (``start_server_worker``, unless
``LRC_SERVER_JOBS=0``): a thread that starts ``rag worker --once`` at LRC_BACKGROUND_NICE (10) whenever jobs wait, so a
restart resumes them without taking the cores from answers.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Callable, Iterable

from engines.base import ErrorCategory
from rag.backends import is_database
from rag.config import settings
from rag.ingest import IngestProgress, IngestReport
from rag.jobs import open_queue
from rag.jobs.queue import CANCELLED, DONE, FAILED, QUEUED, SqlQueue
from rag.jobs.worker import JobWorker, worker_id
from rag.library import Library
from rag.store import StoreError

log = logging.getLogger(__name__)

__all__ = ["IngestCancelled", "LEASE_S", "ingest_beside_answers", "ingest_here", "ingest_in_child", "queue_of",
           "server_worker", "start_server_worker", "stop_server_worker"]

LEASE_S = 60.0  # a run's lease: a process that died leaves its job to a worker this long after
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the rag package
_queues: "weakref.WeakKeyDictionary[Library, SqlQueue]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class IngestCancelled(StoreError):
    """The ingest was cancelled (the Library view's Cancel, ``rag jobs cancel``, Ctrl-C): the files it
    committed before stay in the library, the rest are not indexed."""

    category = ErrorCategory.INTERRUPTED


class _Log:
    """A JobWorker's lines to this module's log (a worker prints them to a stream)."""

    def __init__(self):
        self.line = ""

    def write(self, text: str) -> None:
        self.line += text
        while "\n" in self.line:
            first, self.line = self.line.split("\n", 1)
            if first.strip():
                log.info("%s", first)

    def flush(self) -> None:
        pass


def queue_of(library: Library) -> SqlQueue:
    """The job queue in ``library``'s store, opened once per library."""
    with _lock:
        if library not in _queues:
            _queues[library] = open_queue(library)
        return _queues[library]


def ingest_here(library: Library, paths: Iterable[str], progress: Callable[[IngestProgress], None] | None = None,
                display_names: dict[str, str] | None = None, force: bool = False, owner: str | None = None,
                lease_s: float = LEASE_S) -> IngestReport:
    """``Library.ingest`` as a job of the library's queue, run in this thread (see the module's doc).
    Returns the ingest's report (a run cut off by a lost database connection too: its job is back in the
    queue for a worker to complete). Raises ``IngestCancelled``, a ``StoreError`` of the queue, or what
    the ingest raised."""
    queue = queue_of(library)
    worker = JobWorker(library, queue, lease_s=lease_s, out=_Log(), name=f"{worker_id()}:{threading.get_ident()}")
    job = queue.start([str(p) for p in paths], library.embed_model, worker.id, worker.lease_s, owner, force,
                      display_names)
    try:
        outcome = worker.run_job(job, progress)
    except (KeyboardInterrupt, SystemExit):
        try:
            queue.finish(job.id, worker.id, CANCELLED, summary="stopped; the files committed before stay "
                                                              "(`rag index --resume` indexes the rest)")
        except StoreError:
            pass
        raise
    if outcome.state in (DONE, QUEUED) and outcome.report is not None:
        return outcome.report
    if outcome.state == CANCELLED:
        raise IngestCancelled("Indexing was cancelled (in the Library view or with `rag jobs cancel`); "
                              "the files indexed before the cancel stay in the library.")
    if outcome.state == FAILED and outcome.error is not None:
        raise outcome.error
    raise StoreError(f"Indexing stopped: job {job.id} was taken over by another worker after its lease ran out; "
                     "`rag jobs` shows how it goes on.")


def size_mb(paths: Iterable[str | Path]) -> float:
    """The size in MB of the files among ``paths`` (a folder counts 0)."""
    total = 0
    for p in paths:
        try:
            total += Path(p).stat().st_size if Path(p).is_file() else 0
        except OSError:
            pass
    return total / 2**20


def ingest_in_child(library: Library, paths: Iterable[str], progress: Callable[[IngestProgress], None] | None = None,
                    display_names: dict[str, str] | None = None, force: bool = False, owner: str | None = None,
                    nice: int | None = None) -> IngestReport:
    """``ingest_here`` in a process of its own at niceness ``nice`` (None: LRC_BACKGROUND_NICE; ``rag.jobs.child``): the same job, progress,
    report and errors, while this process's answers keep the cores. Its writes reach this process's library
    through the store (its generation: ``rag.search.index``)."""
    spec = {"paths": [str(p) for p in paths], "display_names": display_names or {}, "force": force, "owner": owner,
            "index_dir": None if is_database(library.index_dir) else str(library.index_dir),
            "nice": settings().background_nice if nice is None else nice}
    proc = subprocess.Popen([sys.executable, "-m", "rag.jobs.child", json.dumps(spec)], env=_child_env(library),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end: dict = {}
    said = ""  # its last line that is not one of its JSON objects (a traceback's last line)
    try:
        for line in proc.stdout:
            item = json.loads(line) if line.startswith("{") else {}
            if "progress" in item and progress is not None:
                progress(IngestProgress(**item["progress"]))
            elif item and "progress" not in item:
                end = item
            elif not item and line.strip():
                said = line.strip()
    finally:
        if proc.poll() is None and not end:
            proc.terminate()  # this side stopped listening: its job is taken again once its lease runs out
        proc.wait()
    if "report" in end:
        r = end["report"]
        for key in ("failed", "skipped", "warnings"):
            r[key] = [tuple(x) for x in r[key]]
        return IngestReport(**r)
    if "cancelled" in end:
        raise IngestCancelled(end["cancelled"])
    if "error" in end:
        raise StoreError(end["error"])
    raise StoreError(f"The indexing process ended without a report (status {proc.returncode}): {said or 'no message'}")


def ingest_beside_answers(library: Library, paths: Iterable[str | Path],
                          progress: Callable[[IngestProgress], None] | None = None,
                          display_names: dict[str, str] | None = None, force: bool = False,
                          owner: str | None = None) -> IngestReport:
    """The chat server's ingest (a drop, a re-index, its watcher's batches): a folder, or files larger than
    LRC_INGEST_CHILD_MB, in a process of its own (``ingest_in_child``), so answers keep the cores; smaller
    files here, in the caller's thread (no model to load). LRC_INGEST_CHILD_MB < 0: always here."""
    paths = [str(p) for p in paths]
    limit = settings().ingest_child_mb
    if limit >= 0 and (any(Path(p).is_dir() for p in paths) or size_mb(paths) > limit):
        return ingest_in_child(library, paths, progress, display_names, force, owner)
    return ingest_here(library, paths, progress, display_names, force, owner)


def _child_env(library: Library) -> dict[str, str]:
    """The environment of a process that ingests for ``library``: this one's, with the rag package importable
    and a database library's URI in LRC_STORE (never on a command line, where others could read it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    if is_database(library.index_dir):
        env["LRC_STORE"] = str(library.index_dir)
    return env


# ------------------------------------------------------------------ the chat server's own worker
class _ServerWorker(threading.Thread):
    """Looks at the library's queue every ``poll_s`` seconds (again and again while its database is away:
    the chat runs regardless) and, when jobs of the library's embedding model wait, runs
    ``rag worker --once --nice NICE`` until none is left: a process of its own at a lower priority, so the
    server's answers keep the cores (docs/BENCHMARKS.md, "Answering while a worker ingests"), and nothing
    is loaded while the queue is empty. Its lines go to this module's log."""

    def __init__(self, library: Callable[[], Library], poll_s: float, nice: int):
        super().__init__(name="server-jobs", daemon=True)
        self.library, self.poll_s, self.nice = library, poll_s, nice
        self.stopping = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []  # the worker processes it ran

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                lib = self.library()
                waiting = queue_of(lib).waiting_models().get(lib.embed_model)
            except StoreError as exc:
                log.warning("the server's job worker waits for the library: %s", exc)
                waiting = None
            if waiting:
                self._work(lib)
            self.stopping.wait(self.poll_s)

    def _work(self, lib: Library) -> None:
        cmd = [sys.executable, "-m", "rag", "worker", "--once", "--nice", str(self.nice)]
        if not is_database(lib.index_dir):  # a database's URI (a password) stays in the environment
            cmd += ["--index-dir", str(lib.index_dir)]
        with _lock:
            if self.stopping.is_set():
                return
            self.proc = subprocess.Popen(cmd, env=_child_env(lib), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.pids.append(self.proc.pid)
        for line in self.proc.stdout:  # until it exits (or is stopped)
            if line.strip():
                log.info("%s", line.rstrip())
        if self.proc.wait() not in (0, -signal.SIGTERM):
            log.warning("the server's job worker (pid %d) ended with status %s", self.proc.pid, self.proc.returncode)

    def stop(self, timeout: float) -> None:
        with _lock:
            self.stopping.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # `rag worker` hands its job back after the current batch
        self.join(timeout)
        if proc is not None and proc.poll() is None:
            proc.kill()


_server: _ServerWorker | None = None


def start_server_worker(library: Callable[[], Library] = Library.shared, poll_s: float = 5.0,
                        nice: int | None = None) -> None:
    """Run the library's queued jobs from this process (the chat server's, at start-up): jobs left by a
    process that died (their lease ran out) and jobs of ``rag index --background`` (see ``_ServerWorker``).
    One per process: a second call while one runs does nothing."""
    global _server
    with _lock:
        if _server is not None and _server.is_alive():
            return
        _server = _ServerWorker(library, poll_s, settings().background_nice if nice is None else nice)
        _server.start()


def server_worker() -> _ServerWorker | None:
    """The server's job worker thread while it runs, else None."""
    server = _server
    return server if server is not None and server.is_alive() else None


def stop_server_worker(timeout: float = 30.0) -> None:
    """Stop the server's worker (a running job goes back to the queue after its current batch)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop(timeout)
