"""Ingest as jobs in a queue that outlives every process: the library's own store holds it.

- ``queue``: ``Job`` (paths, owner, force, embedding model; state, progress, lease), the states, the SQL
  both databases share (``SqlQueue``), ``JobNotFound`` and ``WorkerRefused``.
- ``sqlite``: the embedded library's queue (a table in its SQLite file); ``postgres``: a shared
  library's (a table in its database, claims with ``FOR UPDATE SKIP LOCKED``).
- ``worker``: ``JobWorker``, the loop behind ``rag worker``: claim, run through ``Library.ingest`` with the
  lease renewed and the progress written to the job, cancel and stop between batches.
- ``here``: ``ingest_here``, every ingest of the app (dropped files, re-index, the watcher, ``rag index``)
  as a job run where it was asked for; the chat server's own worker (a niced `rag worker --once` while jobs
  wait), which completes what a restart left.

``open_queue(library)`` gives the queue of a library: where it lives was decided once
(``Settings.library_location``, ``rag.backends.is_database``); the queue follows its store.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from rag.backends import is_database
from rag.jobs.queue import (CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, STATES, Job, JobNotFound, Lease,
                            SqlQueue, WorkerRefused)

if TYPE_CHECKING:
    from rag.library import Library

__all__ = ["CANCELLED", "DONE", "FAILED", "FINISHED", "QUEUED", "RUNNING", "STATES", "Job", "JobNotFound",
           "Lease", "SqlQueue", "WorkerRefused", "open_queue"]


def open_queue(library: "Library") -> SqlQueue:
    """The job queue in ``library``'s store: its SQLite file, or its PostgreSQL database."""
    if is_database(library.index_dir):
        from rag.jobs.postgres import PgQueue  # psycopg is only imported when used

        return PgQueue(library.store)
    from rag.jobs.sqlite import SqliteQueue

    return SqliteQueue(library.store.path)
