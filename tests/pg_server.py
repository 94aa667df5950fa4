"""A real PostgreSQL for the tests: a private PostgreSQL 16 + pgvector (the pgserver wheel) in a temp folder.
The session's server is the ``pg`` fixture of tests/conftest.py (one per test process, shared by every
folder's tests); ``start_pg`` starts one of a test's own (tests that stop it for good)."""
from __future__ import annotations

from pathlib import Path

import pytest


class PgServer:
    """A private PostgreSQL 16 + pgvector (the pgserver wheel) in a temp folder: fresh databases,
    and a real stop and start for the fault tests."""

    def __init__(self, folder: Path):
        import pgserver

        self.folder = folder
        self.server = pgserver.get_server(folder, cleanup_mode="stop")
        self.n = 0

    def uri(self, db: str = "postgres") -> str:
        return self.server.get_uri(db)

    def database(self) -> str:
        """A new empty database; its URI."""
        import psycopg

        self.n += 1
        name = f"lrc_test_{self.n}"
        with psycopg.connect(self.uri(), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
        return self.uri(name)

    def stop(self, mode: str = "immediate") -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self, timeout: float = 120) -> None:
        """Start the stopped server again and wait until it takes connections: pgserver's own start gives
        up after 10 s and refuses a running server still in crash recovery, which on a loaded machine takes
        longer (the server goes on starting meanwhile). The session's server is shared by every folder's
        tests, so a test that stops it leaves it ready for the next."""
        import subprocess
        import time

        import psycopg

        end = time.monotonic() + timeout
        while True:
            try:
                self.server.ensure_postgres_running()  # once the server is ready, this only records it
                break
            except (subprocess.TimeoutExpired, AssertionError):  # not ready yet (pgserver asserts its status)
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
        while True:
            try:
                psycopg.connect(self.uri(), connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        self.server.cleanup()


def start_pg(folder: Path) -> PgServer:
    try:
        import pgserver  # noqa: F401
    except ImportError:
        pytest.fail("pgserver is not installed: the PostgreSQL backend tests need it "
                    "(`.venv/bin/pip install pgserver==0.1.4`, listed in requirements.txt)", pytrace=False)
    return PgServer(folder)
