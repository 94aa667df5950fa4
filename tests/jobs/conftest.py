"""Shared parts of the job queue tests, all real: the PostgreSQL of tests/retrieval (pgserver), small text
files in temp folders, and `rag worker` processes (each loads the real embedding model)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import REPO_ROOT, offline_env

ANIMALS = ["otter", "heron", "badger", "lynx", "marten", "ibex", "puffin", "stoat", "vole", "wren"]
COLOURS = ["amber", "cobalt", "ochre", "teal", "crimson", "ivory", "olive", "slate"]


def notes(folder: Path, n: int, tag: str) -> list[Path]:
    """``n`` tiny text files (one passage each, no two alike) in ``folder``; their resolved paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        f = folder / f"{tag}-{i:03d}.txt"
        f.write_text(f"Ledger {tag} {i}: the {ANIMALS[i % 10]} counted {i * 7 + 3} {COLOURS[i % 8]} stones "
                     f"beside the {tag} mill on day {i}.\n", encoding="utf-8")
        out.append(f.resolve())
    return out


def committed(lib, folder: Path) -> int:
    """How many files under ``folder`` the library holds (commits are seen at once: the progress on a job's
    row only at its worker's next renewal)."""
    return sum(1 for p in lib.store.files() if p.startswith(str(folder) + "/"))


def restart(pg, timeout: float = 120) -> None:
    """Start the stopped PostgreSQL again and wait until it takes connections (tests/pg_server.py)."""
    pg.start(timeout)


def wait_for(condition, timeout: float, what: str, every: float = 0.1):
    """``condition()``'s first true value; fails after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(every)


class WorkerProcess:
    """A real `python -m rag worker` process; what it prints goes to a file (read with ``output()``)."""

    def __init__(self, env: dict, folder: Path, *args: str):
        self.log = folder / f"worker-{time.monotonic_ns()}.log"
        self._out = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "rag", "worker", *args], cwd=REPO_ROOT, env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    @property
    def name(self) -> str:
        """Its name in the queue (host:pid), as ``rag.jobs.worker.worker_id`` makes it."""
        import socket

        return f"{socket.gethostname()}:{self.proc.pid}"

    def output(self) -> str:
        return self.log.read_text()

    def took(self) -> list[tuple[int, int]]:
        """(job id, attempt) of every job it took, in order."""
        return [(int(j), int(a)) for j, a in re.findall(r"took job (\d+) \(attempt (\d+)\)", self.output())]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit within {timeout:.0f} s:\n{self.output()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def workers(tmp_path):
    """Start `rag worker` processes: ``workers(env, *args)``; every one still running is killed at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict, *args: str) -> WorkerProcess:
        w = WorkerProcess(env, tmp_path, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


def worker_env(tmp_path: Path, store: str = "", **extra: str) -> dict:
    """The environment of a worker (and of in-process library objects made with the same settings): this
    test's data folder, the library (``store``: a PostgreSQL URI; "" the embedded one in the data folder),
    small batches (a job of a few dozen files takes several), loading in a thread."""
    env = offline_env(dict(os.environ))
    env.update({"PYTHONPATH": str(REPO_ROOT), "LRC_DATA_DIR": str(tmp_path / "data"), "LRC_STORE": store,
                "LRC_INGEST_WORKERS": "0", "LRC_INGEST_BATCH": "4", **extra})
    return env
