"""Ingest as a job run where it was asked for, and the chat server's own worker.

``ingest_here`` is how the chat's dropped files, its re-index, the watcher and ``rag index`` ingest: the
run is written to the library's queue as a job already running under this process's lease
(``SqlQueue.start``), then run by a ``JobWorker`` in the caller's thread. So every ingest shows in the
Library view and ``rag jobs`` with its progress, a Cancel there stops it between batches
(``IngestCancelled``), and should the process die, its lease runs out and a worker takes the job again and
completes it: a ``rag worker``, or the chat server's own (``start_server_worker``, unless
``LRC_SERVER_JOBS=0``), which takes queued jobs in a thread of its own, so a restart resumes them.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable, Iterable

from engines.base import ErrorCategory
from rag.ingest import IngestProgress, IngestReport
from rag.jobs import open_queue
from rag.jobs.queue import CANCELLED, DONE, FAILED, QUEUED, SqlQueue, WorkerRefused
from rag.jobs.worker import JobWorker, worker_id
from rag.library import Library
from rag.store import StoreError

log = logging.getLogger(__name__)

__all__ = ["IngestCancelled", "LEASE_S", "ingest_here", "queue_of", "server_worker", "start_server_worker",
           "stop_server_worker"]

LEASE_S = 60.0  # a run's lease: a process that died leaves its job to a worker this long after
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


# ------------------------------------------------------------------ the chat server's own worker
class _ServerWorker(threading.Thread):
    """Opens the library (again and again while its database is away: the chat starts regardless), then
    runs a ``JobWorker`` until stopped."""

    def __init__(self, library: Callable[[], Library], poll_s: float, retry_s: float):
        super().__init__(name="server-jobs", daemon=True)
        self.library, self.poll_s, self.retry_s = library, poll_s, retry_s
        self.worker: JobWorker | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                lib = self.library()
                worker = JobWorker(lib, queue_of(lib), poll_s=self.poll_s, out=_Log(), name=f"{worker_id()}:server")
            except StoreError as exc:
                log.warning("the server's job worker waits for the library: %s", exc)
                self.stopping.wait(self.retry_s)
                continue
            with _lock:
                self.worker = worker
                if self.stopping.is_set():
                    return
            try:
                worker.run()
            except WorkerRefused as exc:  # another model's vectors: the chat says so itself
                log.warning("the server's job worker stopped: %s", exc)
            except Exception:
                log.exception("the server's job worker stopped")
            return

    def stop(self, timeout: float) -> None:
        with _lock:
            self.stopping.set()
            if self.worker is not None:
                self.worker.stop()
        self.join(timeout)


_server: _ServerWorker | None = None


def start_server_worker(library: Callable[[], Library] = Library.shared, poll_s: float = 5.0,
                        retry_s: float = 10.0) -> None:
    """Run queued jobs of the library in a thread of this process (the chat server's, at start-up): jobs
    left by a process that died (their lease ran out) and jobs of ``rag index --background``. One per
    process: a second call while one runs does nothing."""
    global _server
    with _lock:
        if _server is not None and _server.is_alive():
            return
        _server = _ServerWorker(library, poll_s, retry_s)
        _server.start()


def server_worker() -> JobWorker | None:
    """The server's running job worker, or None (not started, stopped, or still waiting for the library)."""
    server = _server
    return server.worker if server is not None and server.is_alive() else None


def stop_server_worker(timeout: float = 30.0) -> None:
    """Stop the server's worker (a running job goes back to the queue after its current batch)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop(timeout)
