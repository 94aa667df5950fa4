"""Every ingest of the app is a job of the library's queue (rag.jobs.here), all real (the embedding model,
the embedded library's SQLite queue, real processes): the chat's dropped files and the watcher's sync show
as jobs with their progress and summary; a cancel in the queue (the Library view's Cancel) stops a chat
ingest between batches and the chat says so; a process killed in the middle of an ingest leaves its job
to the chat server's own worker, which starts a `rag worker --once` process for it once the lease has run
out, and that completes it (a restart resumes it)."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap

import pytest

from engines.base import ErrorCategory
from rag import pipeline as pl
from rag.config import REPO_ROOT
from rag.events import Failed, Ingested, Progress
from rag.jobs import CANCELLED, DONE, RUNNING
from rag.jobs.here import queue_of, server_worker, start_server_worker, stop_server_worker
from rag.library import Library
from rag.watch import Watcher, folder_key

from .conftest import committed, notes, wait_for, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture
def lib(tmp_path, monkeypatch):
    """A library in this test's data folder, with the settings a worker process of the test has."""
    for key, value in worker_env(tmp_path, LRC_INGEST_BATCH="2").items():
        if key.startswith("LRC_"):
            monkeypatch.setenv(key, value)
    return Library(tmp_path / "data" / "index")


async def _events(agen) -> list:
    return [ev async for ev in agen]


def test_a_dropped_file_and_a_watched_folder_are_jobs_with_their_progress(lib, tmp_path):
    upload = tmp_path / "tmp-upload-1"
    upload.write_text("The lighthouse keeper logged 41 ships in March.\n", encoding="utf-8")
    events = asyncio.run(_events(pl.ingest_uploads([(upload, "keeper log.txt")], lib=lib,
                                                   uploads_dir=tmp_path / "uploads", owner="alice")))
    assert any(isinstance(e, Progress) for e in events)
    report = events[-1].report if isinstance(events[-1], Ingested) else pytest.fail(f"no report: {events}")
    assert len(report.added) == 1
    job = queue_of(lib).jobs(limit=1)[0]
    assert (job.state, job.owner, job.attempts, job.files_done, job.files_total) == (DONE, "alice", 1, 1, 1)
    assert list(job.display_names.values()) == ["keeper log.txt"] and job.summary == report.summary()

    folder = tmp_path / "watched"
    files = notes(folder, 5, "ash")
    Watcher([folder], lib).sync(folder_key(folder))
    job = queue_of(lib).jobs(limit=1)[0]
    assert (job.state, job.paths, job.files_done, job.files_total) == (DONE, [str(folder_key(folder))], 5, 5)
    assert committed(lib, folder.resolve()) == len(files)


def test_a_cancel_in_the_queue_stops_a_chat_ingest_and_the_chat_says_so(lib, tmp_path):
    folder = tmp_path / "big"
    files = notes(folder, 1000, "oak")  # seconds of work: a cancel is seen at the lease's next renewal (2 s)
    queue = queue_of(lib)

    async def run() -> list:
        seen, cancelled = [], None
        async for ev in pl.ingest([str(folder)], lib=lib):
            seen.append(ev)
            if cancelled is None and isinstance(ev, Progress) and ev.progress.done >= 2:
                running = queue.jobs(states=(RUNNING,))
                assert len(running) == 1
                cancelled = queue.cancel(running[0].id)  # what the Library view's Cancel calls
        return seen

    events = asyncio.run(run())
    failed = events[-1]
    assert isinstance(failed, Failed), events[-3:]
    assert failed.category == ErrorCategory.INTERRUPTED and "cancelled" in failed.error
    assert not any(isinstance(e, Ingested) for e in events)
    job = queue.jobs(limit=1)[0]
    assert job.state == CANCELLED
    kept = committed(lib, folder.resolve())
    assert 0 < kept < len(files)  # what was committed before the cancel stays, the rest is not indexed
    assert lib.store.pending() == []


def test_a_killed_ingest_is_completed_by_the_server_worker(lib, tmp_path):
    folder = tmp_path / "e"
    files = {str(p) for p in notes(folder, 60, "elm")}
    code = textwrap.dedent("""
        import sys
        from rag.jobs.here import ingest_here
        from rag.library import Library
        ingest_here(Library(sys.argv[1]), [sys.argv[2]], lease_s=3)
    """)
    env = worker_env(tmp_path, LRC_INGEST_BATCH="2")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "data" / "index"), str(folder)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    queue = queue_of(lib)
    try:
        wait_for(lambda: committed(lib, folder.resolve()) >= 4, 180, "the ingest's first batches", every=0.03)
    finally:
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate(timeout=30)[0]
    job = queue.jobs(limit=1)[0]
    assert job.state == RUNNING and job.attempts == 1, out  # the killed process's job, its lease still held
    assert committed(lib, folder.resolve()) < len(files), "the ingest ended before it was killed"

    start_server_worker(lambda: lib, poll_s=0.3)
    try:
        server = wait_for(server_worker, 60, "the server's job worker")
        done = wait_for(lambda: (j := queue.get(job.id)).state == DONE and j, 240, "the job's completion")
        wait_for(lambda: server.proc is not None and server.proc.poll() is not None, 60,
                 "the worker process's exit once the queue is empty")
    finally:
        stop_server_worker()
    assert done.attempts == 2 and done.worker.endswith(f":{server.pids[0]}") and len(server.pids) == 1
    assert server.proc.returncode == 0
    assert done.files_done == done.files_total == len(files)
    assert set(lib.store.files()) == files and lib.store.pending() == []


def test_a_large_drop_is_ingested_by_a_process_of_its_own(lib, tmp_path, monkeypatch):
    """A drop larger than LRC_INGEST_CHILD_MB (0 here) is ingested by `python -m rag.jobs.child` (at
    LRC_BACKGROUND_NICE): the chat gets the same progress and report, the job is that process's, and this process's library
    finds the new passage (the child's write reaches it through the store)."""
    import os

    monkeypatch.setenv("LRC_INGEST_CHILD_MB", "0")
    upload = tmp_path / "tmp-upload-2"
    upload.write_text("The quartermaster counted 977 lanterns in the north tower.\n", encoding="utf-8")
    events = asyncio.run(_events(pl.ingest_uploads([(upload, "tower.txt")], lib=lib,
                                                   uploads_dir=tmp_path / "uploads", owner=None)))
    assert any(isinstance(e, Progress) for e in events), events
    assert isinstance(events[-1], Ingested) and len(events[-1].report.added) == 1, events[-1]
    job = queue_of(lib).jobs(limit=1)[0]
    assert job.state == DONE and job.worker.split(":")[1] != str(os.getpid())  # host:pid:thread of another process
    hits = lib.search("How many lanterns did the quartermaster count?", k=1)
    assert hits and "977 lanterns" in hits[0].chunk.text
