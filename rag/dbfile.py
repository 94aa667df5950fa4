"""What every SQLite file of the app shares: write-ahead logging, switched on safely while other
processes (a second server, the CLI, a worker) open the same file at the same moment."""
from __future__ import annotations

import sqlite3
import time

WAL_WAIT_S = 60.0


def use_wal(conn: sqlite3.Connection, wait_s: float = WAL_WAIT_S) -> None:
    """Put the file in WAL mode (a property of the file, kept across connections). Switching needs
    the file to itself, and SQLite answers "database is locked" at once, without its busy timeout,
    when another process is switching or writing at that moment; so this asks again until ``wait_s``
    has passed. A file already in WAL mode costs one read."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
