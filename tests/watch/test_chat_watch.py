"""LRC_WATCH on a real chat server (`chainlit run app.py`) and in its Library view (Debian chromium): the
start-up starts the watcher in a thread, a file written into a watched folder reaches the library (read
back from disk by this process), the Library view lists each watched folder with its state, and the
server still stops on SIGTERM (its shutdown stops the watcher)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag.config import REPO_ROOT

from .conftest import wait_for, write
from .test_cmd_watch import holds

sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
import chainlit_server  # noqa: E402  (tests/e2e: start and stop a real chat server)
from browser_launch import launch, require  # noqa: E402  (tests/: the browser every browser test drives)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def library_view_text(url: str, add: Path) -> dict:
    """Open a chat, click the welcome's Library button; the view's watched folders (path -> state) and text;
    then watch ``add`` with "Watch a folder" (its state once watched) and stop watching it (the note).
    Playwright runs in a thread of its own (a session-wide one of the e2e tests may hold this thread)."""
    from playwright.sync_api import sync_playwright

    def look():
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(url)
                page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=120_000)
                page.locator('[data-step-type="assistant_message"]').get_by_role(
                    "button", name="Library", exact=True).last.click()
                view = page.locator("#library-view").last
                watched = view.locator("#library-watched")
                watched.wait_for()
                seen = {"states": watched.evaluate("w => Object.fromEntries([...w.querySelectorAll('[data-watched]')]"
                                                   ".map(d => [d.dataset.watched, d.dataset.state]))"),
                        "text": watched.inner_text()}
                view.get_by_label("Folder to watch").fill(str(add))
                view.get_by_role("button", name="Watch a folder").click()
                view.locator(f'[data-watched="{add}"]').wait_for()
                seen["note"] = view.locator("#library-note").inner_text()
                for _ in range(100):  # Refresh until the sync is done
                    state = view.locator(f'[data-watched="{add}"]').get_attribute("data-state")
                    if state == "watching":
                        break
                    view.get_by_role("button", name="Refresh").click()
                    page.wait_for_timeout(300)
                seen["added"] = view.locator(f'[data-watched="{add}"]').inner_text()
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                view.screenshot(path=str(SCREENSHOTS / "library-watched-folders.png"))
                view.get_by_role("button", name=f"Stop watching {add}").click()
                view.locator(f'[data-watched="{add}"]').wait_for(state="detached")
                seen["stopped"] = view.locator("#library-note").inner_text()
                job = view.locator("#library-jobs [data-job]").first  # the background job queued by the test
                job.wait_for()
                seen["job"], number = job.inner_text(), job.get_attribute("data-job")
                view.get_by_role("button", name=f"Cancel job {number}").click()
                view.locator(f'[data-job="{number}"][data-state="cancelled"]').wait_for()
                seen["job_note"] = view.locator("#library-note").inner_text()
                return seen
            finally:
                browser.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(look).result()


def test_the_chat_server_watches_lrc_watch(tmp_path, free_port):
    require()
    docs, other, gone = tmp_path / "docs", tmp_path / "other", tmp_path / "gone"
    first = write(docs / "first.md", "mulberry")
    data, guide = tmp_path / "data", tmp_path / "guide"
    guide.mkdir()  # an empty user guide: the first chat adds nothing of its own
    env = chainlit_server.base_env(data, LRC_WATCH=os.pathsep.join(map(str, (docs, other, gone))), LRC_WARMUP="0",
                                   LRC_DOCS_CORPUS=str(guide), LRC_AUTH="none", PYTHONUNBUFFERED="1",
                                   LRC_SERVER_JOBS="0")  # the server runs no queued job: the one queued below waits
    workdir = chainlit_server.prepare_workdir(tmp_path / "app")
    log = tmp_path / "chainlit.log"
    proc = chainlit_server.spawn(workdir, free_port, env, log)
    try:
        chainlit_server.wait_http(f"http://127.0.0.1:{free_port}/", proc, 120)
        index = data / "index"
        wait_for(lambda: (index / "library.sqlite3").exists() and holds(index, first, "mulberry"), 120,
                 "the watched folder synced at start-up")
        new = write(other / "later.md", "quincunx")  # the second folder did not exist at start-up
        wait_for(lambda: holds(index, new, "quincunx"), 30, "a file in a folder that appeared later indexed")
        third = tmp_path / "third"
        added = write(third / "added.md", "ragamuffin")
        write(tmp_path / "big" / "waiting.md", "tamarind")  # not watched: queued for a worker
        queued = subprocess.run([sys.executable, "-m", "rag", "index", "--background", str(tmp_path / "big")],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert queued.returncode == 0, queued.stdout + queued.stderr  # no worker runs: the job waits
        seen = library_view_text(f"http://127.0.0.1:{free_port}/", third)
        assert seen["states"] == {str(docs): "watching", str(other): "watching", str(gone): "missing"}, seen
        assert "missing: its documents are kept" in seen["text"] and "1 document" in seen["text"], seen
        assert seen["note"].startswith(f"Watching {third}") and "watching · 1 document" in seen["added"], seen
        assert seen["stopped"] == f"Stopped watching {third}; its documents stay in the library.", seen
        assert holds(index, added, "ragamuffin")
        assert seen["job"].startswith("Job ") and "big" in seen["job"] and "queued" in seen["job"], seen
        assert seen["job_note"].startswith("Cancelled job "), seen
        assert (data / "watched_folders.json").read_text().strip() == "[]"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        finally:
            chainlit_server.stop(proc)
    assert code is not None, log.read_text()[-3000:]
