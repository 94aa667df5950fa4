"""The job queue of a shared library: an ``lrc_jobs`` table in its PostgreSQL database.

Connections, timeouts and errors are the library store's (``rag.backends.pg_store.PgStore``: one
connection per thread, ``statement_timeout``, ``StoreError``s with a sentence to show). A claim locks the
oldest claimable row with ``SELECT ... FOR UPDATE SKIP LOCKED``: workers on many machines each take a
different job without waiting for each other. Leases are measured in the database's clock, so the
machines' clocks need not agree.
"""
from __future__ import annotations

from contextlib import contextmanager

from rag.jobs.queue import SCHEMA, SqlQueue

_SCHEMA_LOCK = 0x4C524302  # advisory lock held while the queue's table is created (pg_store's is ...01)


class PgQueue(SqlQueue):
    TABLE = "lrc_jobs"
    NOW = "extract(epoch from clock_timestamp())::float8"
    LOCK = "FOR UPDATE SKIP LOCKED"

    def __init__(self, store):
        """``store``: the library's ``PgStore``."""
        self.store = store
        self.location = store.location
        with self._tx() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for stmt in SCHEMA:
                c.execute(stmt.format(table=self.TABLE, id="bigserial PRIMARY KEY"))

    @contextmanager
    def _tx(self, write: bool = True):
        with self.store.errors("could not use its job queue"):
            conn = self.store.conn()
            with conn.transaction():
                yield conn
