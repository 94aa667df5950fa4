"""The job queue of the embedded library: a ``jobs`` table in the store's own SQLite file (WAL).

Every worker, chat server and ``rag`` command on the machine opens the same file; a claim is one
``BEGIN IMMEDIATE`` transaction (SQLite's write lock), so two workers never take the same job. The
clock is this machine's (``time.time`` as the SQL function ``lrc_now()``): one machine shares the file.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rag.jobs.queue import SCHEMA, SqlQueue
from rag.store import StoreError, StoreTimeout, connect


class _Cursor:
    """sqlite3 with the queue's ``%s`` placeholders."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql.replace("%s", "?"), params)


class SqliteQueue(SqlQueue):
    TABLE = "jobs"
    NOW = "lrc_now()"
    LOCK = ""  # BEGIN IMMEDIATE already holds the database's write lock

    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        self.location = str(self.path.parent)
        self._local = threading.local()
        with self._tx() as c:
            for stmt in SCHEMA:
                c.execute(stmt.format(table=self.TABLE, id="INTEGER PRIMARY KEY AUTOINCREMENT"))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.create_function("lrc_now", 0, time.time)
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, write: bool = True):
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise _error(exc, self.location) from exc
        try:
            yield _Cursor(conn)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise _error(exc, self.location) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _error(exc: sqlite3.Error, where: str) -> StoreError:
    if "locked" in str(exc) or "busy" in str(exc):
        return StoreTimeout(f"The job queue of the library at {where} stayed locked by another process: try again.")
    return StoreError(f"The job queue of the library at {where} failed: {exc}")
