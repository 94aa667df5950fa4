"""The ingest job queue: jobs, their states, and the SQL both backends share.

A job is a list of paths to ingest (files or folders, absolute, as the worker will see them), the owner
they are ingested for (``rag.owners``; None: shared), a force flag (a re-index), and the embedding model
of the library it was queued for. Its state moves::

    queued ──claim──> running ──> done | failed
       │                 │  └──(worker stops, or its lease runs out)──> queued (taken again)
       └──cancel──> cancelled <──(cancel asked; the worker stops between batches)──┘

A running job has a lease: the worker's id and a time it expires (``lease_until``, in the database's
clock), renewed while the worker works (``renew``). A job whose lease ran out (its worker was killed, or
lost its machine) is claimable again, like a queued one: ``claim`` takes it, and the ingester's pending
files complete what the first run left (``rag.jobs.worker``). A worker only takes jobs of its own
embedding model (``claim(model=...)``); ``waiting_models`` says which models the waiting jobs need.

``SqlQueue`` holds everything but the connection and the row lock: ``rag.jobs.sqlite.SqliteQueue`` (the
embedded library's database file: its write lock makes a claim exclusive) and
``rag.jobs.postgres.PgQueue`` (``SELECT ... FOR UPDATE SKIP LOCKED``: many workers on many machines).
"""
from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from engines.base import ErrorCategory
from rag.store import ModelMismatch, StoreError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)


class JobNotFound(StoreError):
    """No job has that id (``rag jobs cancel 99``)."""

    category = ErrorCategory.NOT_FOUND


class WorkerRefused(ModelMismatch):
    """A worker whose embedding model is not the library's (or not the waiting jobs'): it takes no job,
    so vectors of two models are never mixed."""


@dataclass
class Job:
    id: int
    state: str
    paths: list[str]
    owner: str | None = None
    force: bool = False
    embed_model: str = ""
    display_names: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    lease_until: float | None = None
    attempts: int = 0  # claims so far (more than 1: taken again after a stop or a lost lease)
    files_done: int = 0
    files_total: int = 0
    current: str = ""  # the file being worked on, for people
    cancel_requested: bool = False
    error: str = ""
    summary: str = ""  # the ingest report's summary line, once finished

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def progress(self) -> str:
        """``12/40`` (or ``-`` before the worker counted the files)."""
        return f"{self.files_done}/{self.files_total}" if self.files_total else "-"


@dataclass
class Lease:
    """What renewing a lease tells the worker: whether the job is still its own, and whether a cancel
    was asked."""

    held: bool
    cancel: bool = False


# one table on both databases ({table}: ``jobs`` beside the embedded store's tables, ``lrc_jobs`` in PostgreSQL)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {table} (
        id {id}, state text NOT NULL, paths text NOT NULL, owner text, force integer NOT NULL DEFAULT 0,
        embed_model text NOT NULL, display_names text, created_at double precision, started_at double precision,
        finished_at double precision, worker text, lease_until double precision, attempts integer NOT NULL DEFAULT 0,
        files_done integer NOT NULL DEFAULT 0, files_total integer NOT NULL DEFAULT 0, current_file text DEFAULT '',
        cancel integer NOT NULL DEFAULT 0, error text DEFAULT '', summary text DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS {table}_state ON {table} (state, id)",
]
_COLS = ("id, state, paths, owner, force, embed_model, display_names, created_at, started_at, finished_at, "
         "worker, lease_until, attempts, files_done, files_total, current_file, cancel, error, summary")


def _job(row) -> Job:
    (id_, state, paths, owner, force, model, names, created, started, finished, worker, lease, attempts,
     done, total, current, cancel, error, summary) = row
    return Job(int(id_), state, json.loads(paths or "[]"), owner, bool(force), model or "", json.loads(names or "{}"),
               float(created or 0), started, finished, worker, lease, int(attempts or 0), int(done or 0),
               int(total or 0), current or "", bool(cancel), error or "", summary or "")


class SqlQueue:
    """The queue's statements, written once for both databases. A subclass gives ``_tx()`` (a transaction
    whose ``execute(sql, params)`` returns a cursor; ``%s`` placeholders), ``NOW`` (an SQL expression for
    the clock leases are measured in) and ``LOCK`` (what makes a claim's row its own)."""

    TABLE = ""
    NOW = ""
    LOCK = ""
    location = ""

    def _tx(self, write: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self, sql: str, params: tuple = ()) -> list:
        with self._tx(write=False) as c:
            return c.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ queueing and reading
    def enqueue(self, paths: list[str], embed_model: str, owner: str | None = None, force: bool = False,
                display_names: dict[str, str] | None = None) -> Job:
        """A new queued job; returns it (with its id)."""
        return self._insert(paths, embed_model, owner, force, display_names)

    def start(self, paths: list[str], embed_model: str, worker: str, lease_s: float, owner: str | None = None,
              force: bool = False, display_names: dict[str, str] | None = None) -> Job:
        """A new job already running under ``worker``'s lease (an ingest run where it was asked for,
        ``rag.jobs.here``): no other worker can take it while the lease is renewed."""
        return self._insert(paths, embed_model, owner, force, display_names, (worker, float(lease_s)))

    def _insert(self, paths: list[str], embed_model: str, owner: str | None, force: bool,
                display_names: dict[str, str] | None, lease: tuple[str, float] | None = None) -> Job:
        running = (f"{self.NOW}, %s, {self.NOW} + %s, 1" if lease else "NULL, NULL, NULL, 0")
        with self._tx() as c:
            row = c.execute(
                f"INSERT INTO {self.TABLE} (state, paths, owner, force, embed_model, display_names, created_at, "
                f"started_at, worker, lease_until, attempts) VALUES (%s, %s, %s, %s, %s, %s, {self.NOW}, {running}) "
                f"RETURNING {_COLS}",
                (RUNNING if lease else QUEUED, json.dumps([str(p) for p in paths]), owner, int(bool(force)),
                 embed_model, json.dumps(display_names or {}), *(lease or ()))).fetchone()
        return _job(row)

    def get(self, job_id: int) -> Job:
        rows = self._read(f"SELECT {_COLS} FROM {self.TABLE} WHERE id = %s", (int(job_id),))
        if not rows:
            raise JobNotFound(f"No job {job_id} in the queue of {self.location} (`rag jobs` lists them).")
        return _job(rows[0])

    def jobs(self, limit: int = 50, states: tuple[str, ...] = STATES) -> list[Job]:
        """The newest ``limit`` jobs in these states, newest first."""
        marks = ", ".join(["%s"] * len(states))
        rows = self._read(f"SELECT {_COLS} FROM {self.TABLE} WHERE state IN ({marks}) ORDER BY id DESC LIMIT %s",
                          (*states, int(limit)))
        return [_job(r) for r in rows]

    def waiting_models(self) -> dict[str, list[int]]:
        """Embedding model -> ids of the jobs waiting for a worker of it (queued, or lease run out)."""
        out: dict[str, list[int]] = {}
        for model, job_id in self._read(f"SELECT embed_model, id FROM {self.TABLE} WHERE {self._claimable()} "
                                        "ORDER BY id"):
            out.setdefault(model, []).append(int(job_id))
        return out

    def _claimable(self) -> str:
        return f"(state = '{QUEUED}' OR (state = '{RUNNING}' AND lease_until < {self.NOW} AND cancel = 0))"

    def _orphaned_cancel(self) -> str:
        """A running job whose cancel was asked and whose worker is gone (its lease ran out)."""
        return f"(state = '{RUNNING}' AND cancel = 1 AND lease_until < {self.NOW})"

    # ------------------------------------------------------------------ a worker's side
    def claim(self, worker: str, model: str, lease_s: float) -> Job | None:
        """The oldest job of ``model`` that is queued or whose lease ran out, now running under
        ``worker``'s lease for ``lease_s`` seconds; None when there is none. Two workers never get the
        same job: the row is locked (``LOCK``) and the state re-checked in one transaction."""
        with self._tx() as c:
            c.execute(f"UPDATE {self.TABLE} SET state = '{CANCELLED}', finished_at = {self.NOW}, lease_until = NULL "
                      f"WHERE {self._orphaned_cancel()}")
            row = c.execute(f"SELECT id FROM {self.TABLE} WHERE embed_model = %s AND {self._claimable()} "
                            f"ORDER BY id LIMIT 1 {self.LOCK}", (model,)).fetchone()
            if row is None:
                return None
            row = c.execute(
                f"UPDATE {self.TABLE} SET state = '{RUNNING}', worker = %s, lease_until = {self.NOW} + %s, "
                f"attempts = attempts + 1, started_at = coalesce(started_at, {self.NOW}) "
                f"WHERE id = %s AND {self._claimable()} RETURNING {_COLS}", (worker, float(lease_s), row[0])).fetchone()
        return _job(row) if row else None

    def renew(self, job_id: int, worker: str, lease_s: float, done: int | None = None, total: int | None = None,
              current: str | None = None) -> Lease:
        """Extend ``worker``'s lease on a running job (and record its progress). ``held`` is False when the
        job is no longer this worker's (its lease ran out and another took it, or it was finished)."""
        with self._tx() as c:
            row = c.execute(
                f"UPDATE {self.TABLE} SET lease_until = {self.NOW} + %s, files_done = coalesce(%s, files_done), "
                "files_total = coalesce(%s, files_total), current_file = coalesce(%s, current_file) "
                f"WHERE id = %s AND worker = %s AND state = '{RUNNING}' RETURNING cancel",
                (float(lease_s), done, total, current, int(job_id), worker)).fetchone()
        return Lease(False) if row is None else Lease(True, bool(row[0]))

    def finish(self, job_id: int, worker: str, state: str, summary: str = "", error: str = "") -> bool:
        """End ``worker``'s job as done, failed or cancelled (False: it was not this worker's any more)."""
        assert state in FINISHED, state
        with self._tx() as c:
            row = c.execute(
                f"UPDATE {self.TABLE} SET state = %s, summary = %s, error = %s, finished_at = {self.NOW}, "
                f"lease_until = NULL, current_file = '' WHERE id = %s AND worker = %s AND state = '{RUNNING}' RETURNING id",
                (state, summary, error, int(job_id), worker)).fetchone()
        return row is not None

    def release(self, job_id: int, worker: str) -> bool:
        """A worker stopping (SIGTERM, Ctrl-C) hands its job back: queued again for any worker (cancelled,
        when a cancel was asked meanwhile). False: it was not this worker's any more."""
        with self._tx() as c:
            row = c.execute(
                f"UPDATE {self.TABLE} SET state = CASE WHEN cancel = 1 THEN '{CANCELLED}' ELSE '{QUEUED}' END, "
                f"worker = NULL, lease_until = NULL, current_file = '', finished_at = CASE WHEN cancel = 1 THEN {self.NOW} "
                f"ELSE NULL END WHERE id = %s AND worker = %s AND state = '{RUNNING}' RETURNING id",
                (int(job_id), worker)).fetchone()
        return row is not None

    # ------------------------------------------------------------------ cancel
    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a queued one never runs (cancelled now); a running one is marked, and its worker
        stops between batches (what it committed stays; one whose worker is gone is cancelled now); a
        finished one is left as it is. Returns the job."""
        with self._tx() as c:
            c.execute(f"UPDATE {self.TABLE} SET cancel = 1 WHERE id = %s AND state = '{RUNNING}'", (int(job_id),))
            c.execute(f"UPDATE {self.TABLE} SET state = '{CANCELLED}', finished_at = {self.NOW}, cancel = 1, "
                      f"lease_until = NULL WHERE id = %s AND (state = '{QUEUED}' OR {self._orphaned_cancel()})",
                      (int(job_id),))
        return self.get(job_id)

    def close(self) -> None:
        """Nothing by default (the library's store owns the connections)."""
