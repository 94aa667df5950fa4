"""What the Library view shows of the background ingest jobs and who may cancel them
(rag.chat.library_view.background_jobs / cancel_job), on the real queue in a real embedded library: all
jobs without logins; with logins a user's own only, and another user's job cannot be cancelled."""
from __future__ import annotations

import pytest

from rag import jobs
from rag.chat import library_view
from rag.config import settings


@pytest.fixture
def queue(tmp_path, monkeypatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LRC_STORE", raising=False)
    from rag import pipeline as pl

    q = jobs.open_queue(pl.library())
    yield q
    q.close()


def test_the_view_lists_jobs_by_owner_and_cancels_only_ones_own(queue, tmp_path):
    model = settings().embed_model
    finished = []
    for i in range(4):  # four finished jobs: the view shows the last three
        queue.enqueue([str(tmp_path / f"old-{i}.md")], model)
        job = queue.claim("w1", model, 60)
        assert queue.finish(job.id, "w1", jobs.DONE, summary=f"indexed old-{i}.md")
        finished.append(job)
    done = finished[-1]
    shared = queue.enqueue([str(tmp_path / "papers"), str(tmp_path / "notes.md")], model)
    alice = queue.enqueue([str(tmp_path / "alice.pdf")], model, owner="alice", display_names={
        str(tmp_path / "alice.pdf"): "Alice's report.pdf"})
    taken = queue.claim("w1", model, 60)
    assert taken is not None and taken.id == shared.id  # the oldest first
    assert queue.release(shared.id, "w1")  # back in the line
    assert queue.claim("w1", model, 60).id == shared.id
    queue.renew(shared.id, "w1", 60, done=1, total=2, current=str(tmp_path / "notes.md"))

    rows = {r["id"]: r for r in library_view.background_jobs(None)}
    assert {str(shared.id), str(alice.id), str(done.id)} <= set(rows)
    assert rows[str(shared.id)]["what"] == "papers and 1 more" and rows[str(shared.id)]["text"] == "running"
    assert rows[str(shared.id)]["progress"] == "1/2 files" and rows[str(shared.id)]["current"] == "notes.md"
    assert rows[str(alice.id)]["what"] == "Alice's report.pdf" and rows[str(alice.id)]["cancellable"]
    assert rows[str(alice.id)]["progress"] == ""  # not counted before a worker takes it
    assert str(finished[0].id) not in rows and len(rows) == 5  # the waiting and running, then the last 3 finished
    assert rows[str(done.id)]["text"] == "done" and rows[str(done.id)]["detail"] == "indexed old-3.md"
    assert not rows[str(done.id)]["cancellable"]
    assert "already finished" in library_view.cancel_job(None, str(done.id))

    # with logins: only one's own jobs, and another's cannot be cancelled
    assert [r["id"] for r in library_view.background_jobs("alice")] == [str(alice.id)]
    assert library_view.background_jobs("bob") == []
    with pytest.raises(PermissionError):
        library_view.cancel_job("bob", str(alice.id))
    assert queue.get(alice.id).state == jobs.QUEUED
    with pytest.raises(LookupError):
        library_view.cancel_job("alice", "99999")
    with pytest.raises(LookupError):
        library_view.cancel_job(None, "not a number")

    assert "Cancelled job" in library_view.cancel_job("alice", str(alice.id))
    assert queue.get(alice.id).state == jobs.CANCELLED
    note = library_view.cancel_job(None, str(shared.id))  # running: stops after its batch
    assert "stops after the batch" in note
    row = next(r for r in library_view.background_jobs(None) if r["id"] == str(shared.id))
    assert row["text"] == "stopping after its batch" and not row["cancellable"]
    cancelled = next(r for r in library_view.background_jobs(None) if r["id"] == str(alice.id))
    assert cancelled["state"] == jobs.CANCELLED and not cancelled["cancellable"]
