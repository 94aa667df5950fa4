"""The loop behind ``rag worker``: take ingest jobs from the library's queue and run them.

``JobWorker.run`` claims the oldest job of its embedding model (``SqlQueue.claim``), runs it through
``Library.ingest`` (the same ingest as ``rag index`` and the chat's dropped files), and finishes it as
done (the report's summary) or failed (the error). While it works, a heartbeat thread renews the lease
and writes the progress (files done / total, current file) to the job's row every ``beat`` seconds.

Stopping between batches: the progress callback raises ``Stopped`` (the ingester's ``IngestStopped``) when
the loader hands over the next file or a batch is about to be embedded, never inside a commit, so every
committed file stays and the rest stays pending:

- a cancel asked for the job (``rag jobs cancel``): the job ends cancelled, its files not committed are
  no longer pending (they are not to be indexed);
- the worker is asked to stop (SIGTERM, Ctrl-C: ``stop()``): the job goes back to the queue;
- the lease was lost (another worker took the job after it ran out): the job is left to that worker.

The library's database going away (a lost connection cuts the run off; the files not committed stay
pending) hands the job back to the queue (or leaves it to its lease, when the database cannot even be
told), and the worker waits for the database and goes on (``rag worker --once`` exits instead).

Resuming: a job taken again (its worker was killed, or stopped) is run again over its paths; unchanged
files are skipped by the manifest and the interrupted files are pending, so the ingest completes them. A
forced job (a re-index) taken again only re-reads its files that are still pending, not those the first
run already committed.

A worker refuses (``WorkerRefused``) a library whose vectors come from another embedding model, and
jobs queued for another model are never claimed by it (``rag worker --once`` says so and fails).
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Callable, TextIO

from rag.backends import stored_model_is
from rag.ingest import IngestProgress, IngestReport
from rag.ingest.records import IngestStopped
from rag.ingest.ingester import expand
from rag.jobs.queue import CANCELLED, DONE, FAILED, QUEUED, Job, SqlQueue, WorkerRefused
from rag.library import Library
from rag.store import StoreError, StoreTimeout, StoreUnavailable

_STOP_STAGES = ("loading", "embedding")  # between batches: the next file arrives, or a batch starts


class Stopped(IngestStopped):
    """The running ingest stops between batches; ``why``: "cancel", "stop" or "lost"."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


@dataclass
class JobRun:
    """How a run of a job ended: its state as this worker left it (done, failed, cancelled, queued: handed
    back, or "lost"), the ingest's report when it ran to its end, and the exception of a failed run."""

    state: str
    report: IngestReport | None = None
    error: BaseException | None = None


def worker_id() -> str:
    """This worker's name in the queue: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Beat(threading.Thread):
    """Renews a running job's lease and writes its progress every ``JobWorker.beat`` seconds (and at the
    first progress of the run)."""

    def __init__(self, worker: "JobWorker", job: Job, base: int):
        super().__init__(name=f"lease-{job.id}", daemon=True)
        self.worker, self.job, self.base = worker, job, base
        self.progress: tuple[int, int, str] | None = None  # (done, total, current file), newest
        self.cancel = self.lost = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.worker.beat):
            self.renew()

    def renew(self) -> None:
        w, p = self.worker, self.progress
        try:
            lease = w.queue.renew(self.job.id, w.id, w.lease_s, *(p if p else (None, None, None)))
        except StoreError as exc:  # the database is away for a moment: the lease is longer than a beat
            w.say(f"job {self.job.id}: could not renew the lease ({exc})")
            return
        self.lost = not lease.held
        self.cancel = lease.cancel

    def seen(self, p: IngestProgress) -> None:
        first = self.progress is None
        self.progress = (self.base + p.done, self.base + p.total, p.file)
        if first:  # written at once: the files are planned (pending), which a run taken again relies on
            self.renew()


class JobWorker:
    def __init__(self, library: Library, queue: SqlQueue, lease_s: float = 60.0, poll_s: float = 2.0,
                 out: TextIO | None = None, name: str | None = None):
        self.library = library
        self.queue = queue
        self.lease_s = float(lease_s)
        self.beat = max(0.2, min(self.lease_s / 3, 2.0))  # renewals per lease: a missed one or two do no harm
        self.poll_s = float(poll_s)
        self.retry_s = max(2.0, self.poll_s)  # after the library's database went away
        self.id = name or worker_id()
        self.out = out or sys.stdout
        self._stop = threading.Event()
        self._warned: set[str] = set()

    @property
    def model(self) -> str:
        return self.library.embed_model

    def say(self, line: str) -> None:
        print(f"[{self.id}] {line}", file=self.out, flush=True)

    def stop(self) -> None:
        """Stop after the current batch: the running job goes back to the queue (from a signal handler)."""
        self._stop.set()

    # ------------------------------------------------------------------ the loop
    def check_model(self) -> None:
        """Refuse a library whose stored vectors come from another embedding model (before anything is
        loaded: an embedded library would otherwise be emptied for a rebuild)."""
        store = self.library.store
        if store.model_id() and not stored_model_is(store, self.model):
            stored = (store.model_id() or "").split("|", 1)[0]
            raise WorkerRefused(
                f"This worker embeds with '{self.model}', but the library at {self.library.backend.location} "
                f"holds vectors of '{stored}': it takes no jobs. Start it with LRC_EMBED_MODEL={stored}.")

    def run(self, once: bool = False) -> int:
        """Take and run jobs until ``stop()`` (with ``once``: until none is waiting). Returns the number
        of jobs run. Raises ``WorkerRefused`` (another embedding model) and ``StoreError``s."""
        ran = 0
        with self.library.ingester.keep_loaders() as spares:  # job after job: loader processes started once
            while not self._stop.is_set():
                try:
                    job = self._next(once)
                    if job is not None:
                        self.run_job(job)
                        ran += 1
                        continue
                except (StoreUnavailable, StoreTimeout) as exc:  # the database went away: wait for it (not --once)
                    if once:
                        raise
                    self.say(f"{exc} Trying again in {self.retry_s:g} s.")
                    self._stop.wait(self.retry_s)
                    continue
                if once:
                    break
                spares.close()  # the queue is empty: no idle loader processes while waiting
                self._stop.wait(self.poll_s)
        return ran

    def _next(self, once: bool) -> Job | None:
        """The next job for this worker, or None (then: are jobs waiting for another model?)."""
        self.check_model()  # before each job: the library may have been rebuilt with another model meanwhile
        job = self.queue.claim(self.id, self.model, self.lease_s)
        if job is None:
            self._other_models(once)
        return job

    def _other_models(self, once: bool) -> None:
        """Jobs wait for a worker of another embedding model: fail (``once``) or say so once."""
        others = {m: ids for m, ids in self.queue.waiting_models().items() if m != self.model}
        if not others:
            return
        what = "; ".join(f"job(s) {', '.join(map(str, ids))} need '{m}'" for m, ids in others.items())
        err = WorkerRefused(f"This worker embeds with '{self.model}' and takes no job of another model: {what}. "
                            "Start a worker with that LRC_EMBED_MODEL.")
        if once:
            raise err
        if what not in self._warned:
            self._warned.add(what)
            self.say(str(err))

    # ------------------------------------------------------------------ one job
    def run_job(self, job: Job, also: Callable[[IngestProgress], None] | None = None) -> JobRun:
        """Run a claimed job to its end (or until stopped); ``also`` sees the ingest's progress too."""
        paths, force, base = self._plan(job)
        self.say(f"took job {job.id} (attempt {job.attempts}): {len(job.paths)} path(s)"
                 + (", re-index" if job.force else ""))
        beat = _Beat(self, job, base)
        beat.start()
        runner = threading.get_ident()

        def progress(p: IngestProgress) -> None:
            beat.seen(p)
            if also is not None:
                also(p)
            if p.stage in _STOP_STAGES and threading.get_ident() == runner:
                why = "cancel" if beat.cancel else "lost" if beat.lost else "stop" if self._stop.is_set() else ""
                if why:
                    raise Stopped(why)

        try:
            report = self.library.ingest(paths, progress, job.display_names or None, force, job.owner)
        except Stopped as stop:
            return JobRun(self._stopped(job, stop.why))
        except (StoreUnavailable, StoreTimeout):  # may come back: the job is for a worker then (this one too)
            self._hand_back(job, "the library's database went away")
            raise
        except Exception as exc:  # the job fails, the worker goes on: a StoreError's sentence, else the type too
            error = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            self.queue.finish(job.id, self.id, FAILED, error=error)
            self.say(f"job {job.id} failed: {error}")
            return JobRun(FAILED, error=exc)
        finally:
            beat.done.set()
            beat.join()
        unsaved = self._pending_of(job)[1]  # the run was cut off (a lost connection): its files not saved
        if unsaved:
            why = report.failed[-1][1] if report.failed else "still pending"
            return JobRun(self._hand_back(job, f"{len(unsaved)} file(s) not saved ({why})"), report)
        settled = len(report.added) + len(report.updated) + len(report.unchanged) + len(report.failed)
        beat.progress = (base + settled, base + settled, "")  # every file settled (none told when all unchanged)
        beat.renew()
        failed = "; ".join(reason for _, reason in report.failed[:5])
        state = DONE if self.queue.finish(job.id, self.id, DONE, report.summary(), failed) else "lost"
        self.say(f"job {job.id} {state}: {report.summary()}")
        return JobRun(state, report)

    def _plan(self, job: Job) -> tuple[list[str], bool, int]:
        """(paths to ingest, force, files already done) for a job: all of it on its first attempt; a
        forced job taken again only its files still pending (the rest were committed by the first run)."""
        if not (job.force and job.attempts > 1):
            return job.paths, job.force, 0
        files, left = self._pending_of(job)
        if not left and not job.files_total:  # the first run stopped before it planned anything
            return job.paths, True, 0
        return left, True, len(files) - len(left)

    def _stopped(self, job: Job, why: str) -> str:
        if why == "lost":
            self.say(f"job {job.id}: its lease ran out and another worker took it; leaving it to that worker")
            return "lost"
        if why == "stop":
            return self._hand_back(job, "stopping")
        self.library.store.clear_pending(self._pending_of(job)[1])
        self.queue.finish(job.id, self.id, CANCELLED, summary="cancelled; the files committed before stay")
        self.say(f"job {job.id} cancelled")
        return CANCELLED

    def _hand_back(self, job: Job, why: str) -> str:
        """The job back to the queue for any worker (cancelled, if a cancel was asked meanwhile)."""
        self.queue.release(job.id, self.id)
        self.say(f"{why}: job {job.id} handed back to the queue")
        return QUEUED

    def _pending_of(self, job: Job) -> tuple[list[str], list[str]]:
        """(the job's files, those of them still pending: planned by a run and not committed)."""
        files = [str(f) for f in expand(job.paths)[0]]
        pending = set(self.library.pending())
        return files, [f for f in files if f in pending]

