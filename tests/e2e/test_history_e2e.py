"""Chats that last: a real Chainlit server with its history on SQLite, chromium as the user.

Ask with sources (a dropped PDF, so a PDF element too), reload, open the chat from the sidebar: its
messages, sources and settings are back; restart the server: still there; rename and delete it.
The server here is this module's own (it is restarted), answering quote-only (no model) for speed.
"""
from __future__ import annotations

import re
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO_ROOT, launch
import chainlit_server
from rag.config import settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PDF = settings().datasets_dir / "pdfs" / "R-data.pdf"
QUESTION = "How do I read a spreadsheet or a CSV file into R with read.table?"
ANSWER = '[data-step-type="assistant_message"]'


@pytest.fixture(scope="module")
def history_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("history-server")
    holder = {"srv": launch(root, LRC_ANSWER_STYLE="quote")}

    def restart():
        chainlit_server.stop(holder["srv"].proc)
        holder["srv"] = launch(root, workdir=holder["srv"].workdir, LRC_ANSWER_STYLE="quote")
        return holder["srv"]

    holder["restart"] = restart
    yield holder
    chainlit_server.stop(holder["srv"].proc)


def open_page(browser, url: str, path: str = "/"):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + path)
    page.wait_for_selector("#chat-input", timeout=120_000)
    return ctx, page


def texts(page) -> str:
    return "\n".join(page.locator(ANSWER).all_text_contents())


def thread_id(page) -> str:
    m = re.search(r"/thread/([0-9a-f-]{36})", page.url)
    assert m, f"the chat has no address of its own: {page.url}"
    return m.group(1)


def http_status(url: str, cookie: str = "") -> int:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_chat_comes_back_after_reload_and_restart_then_is_deleted(history_server, browser, screenshots):
    assert PDF.is_file(), f"{PDF} is missing (shared datasets)"
    srv = history_server["srv"]
    ctx, page = open_page(browser, srv.url)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    # a setting of this chat: 5 passages, dense retrieval
    page.click("#chat-settings-open-modal")
    page.click("#mode")
    page.get_by_role("option", name="dense", exact=True).click()
    page.click("#confirm")
    page.wait_for_selector("#confirm", state="detached")
    page.set_input_files("#upload-button-input", [str(PDF)])
    page.get_by_text("R-data.pdf").first.wait_for()
    page.fill("#chat-input", QUESTION)
    page.click("#chat-submit")
    page.get_by_text("quote only (no model)").first.wait_for(timeout=300_000)
    page.wait_for_selector("#stop-button", state="detached")
    time.sleep(1.5)  # the last writes of the answer reach the database
    before = texts(page)
    assert re.search(r"R-data\.pdf, p\. \d+", before), before
    tid = thread_id(page)

    # reload: the chat is in the sidebar; opening it shows its messages, sources and settings
    page.reload()
    page.wait_for_selector("#chat-input")
    page.goto(srv.url + "/")
    page.wait_for_selector("#chat-input")
    entry = page.locator(f"#thread-{tid}")
    entry.wait_for(timeout=30_000)
    assert QUESTION[:30] in entry.inner_text(), "the chat list names the chat by its question"
    entry.click()
    page.wait_for_url(f"**/thread/{tid}")
    page.get_by_text("quote only (no model)").first.wait_for(timeout=60_000)
    after = texts(page)
    assert re.search(r"R-data\.pdf, p\. \d+", after), after
    pdf_link = page.get_by_role("link", name=re.compile(r"open R-data\.pdf at p\. \d+")).first
    name = pdf_link.text_content()
    pdf_link.click()
    page.wait_for_function("n => document.querySelector('#side-view-title')?.textContent.includes(n)", arg=name)
    page.locator("#side-view-content canvas").first.wait_for(timeout=30_000)  # pdf.js drew the stored PDF
    page.screenshot(path=str(screenshots / "history-reopened-chat.png"))
    page.click("#chat-settings-open-modal")
    assert "dense" in page.locator("#mode").inner_text(), "the chat's retrieval mode came back"
    page.keyboard.press("Escape")
    # and it continues: a follow-up in the reopened chat is answered and saved
    page.fill("#chat-input", "What does read.csv assume about the separator?")
    page.click("#chat-submit")
    page.wait_for_function("() => document.querySelectorAll('[data-step-type=\"assistant_message\"]').length > 0")
    page.locator(ANSWER).filter(has_text="quote only (no model)").nth(1).wait_for(timeout=120_000)
    time.sleep(1.5)

    # restart the server: in the same browser (its login kept), the chat, its sources and settings are there
    srv = history_server["restart"]()
    page.goto(srv.url + "/")
    page.wait_for_selector("#chat-input", timeout=120_000)
    page.locator(f"#thread-{tid}").click()
    page.wait_for_url(f"**/thread/{tid}")
    page.locator(ANSWER).filter(has_text="quote only (no model)").nth(1).wait_for(timeout=60_000)
    after = texts(page)
    assert re.search(r"R-data\.pdf, p\. \d+", after), after
    assert "Indexing 1 file(s): done" in after, "a message's last update is what is kept"
    page.click("#chat-settings-open-modal")
    assert "dense" in page.locator("#mode").inner_text()
    page.keyboard.press("Escape")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
    assert http_status(f"{srv.url}/project/thread/{tid}", cookie) == 200

    # rename, then delete it from the sidebar
    page.goto(srv.url + "/")
    page.wait_for_selector("#chat-input")
    entry = page.locator(f"#thread-{tid}")
    entry.hover()
    entry.locator("#thread-options").click()
    page.get_by_role("menuitem", name=re.compile("Rename")).click()
    page.get_by_role("dialog").get_by_role("textbox").fill("R data import")
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    page.wait_for_function("id => document.querySelector('#thread-' + id)?.textContent.includes('R data import')",
                           arg=tid)
    entry.hover()
    entry.locator("#thread-options").click()
    page.get_by_role("menuitem", name=re.compile("Delete")).click()
    page.locator("[role=alertdialog], [role=dialog]").get_by_role("button", name=re.compile("Confirm|Delete")).click()
    entry.wait_for(state="detached", timeout=30_000)
    assert http_status(f"{srv.url}/project/thread/{tid}", cookie) == 404, "a deleted chat is gone"
    ctx.close()


def test_a_long_chat_opens_with_its_newest_messages(history_server, browser, screenshots):
    """A chat of 150 messages (a real one's rows, cloned as bench/bench_history.py does) opens with its
    newest 60 and a note; the Earlier button shows the rest as one message."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from bench_history import clone_chat

    srv = history_server["srv"]
    ctx, page = open_page(browser, srv.url)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    page.fill("#chat-input", "How do I add documents to the library?")
    page.click("#chat-submit")
    page.get_by_text("quote only (no model)").first.wait_for(timeout=120_000)
    page.wait_for_selector("#stop-button", state="detached")
    time.sleep(1.5)
    long_tid = clone_chat(srv.data_dir, thread_id(page), 150, 20)
    page.goto(srv.url + "/")
    page.wait_for_selector("#chat-input")
    page.locator(f"#thread-{long_tid}").click()
    page.get_by_text("END-OF-LONG-CHAT").first.wait_for(timeout=60_000)
    note = page.get_by_text(re.compile(r"\d+ earlier messages of this chat are kept"))
    note.wait_for()
    hidden = int(re.search(r"(\d+) earlier", note.text_content()).group(1))
    shown = page.locator('[data-step-type="user_message"]').count() + page.locator(ANSWER).count()
    assert hidden + shown - 1 >= 150 and shown <= 61, (hidden, shown)
    page.click("#command-Earlier")
    page.click("#chat-submit")
    page.get_by_text("Earlier messages of this chat:").wait_for(timeout=30_000)
    assert page.locator(ANSWER).last.text_content().count("How do I add documents to the library?") >= 2
    ctx.close()


def test_a_chat_begun_with_a_button_is_named_by_its_first_question(history_server, browser):
    srv = history_server["srv"]
    ctx, page = open_page(browser, srv.url)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    page.locator(ANSWER).get_by_role("button", name="Library", exact=True).last.click()
    page.locator("#library-view").first.wait_for(timeout=60_000)
    page.wait_for_url("**/thread/*", timeout=30_000)
    tid = thread_id(page)
    entry = page.locator(f"#thread-{tid}")
    entry.wait_for(timeout=30_000)
    page.wait_for_function("id => document.querySelector('#thread-' + id)?.textContent.includes('Library')", arg=tid)
    assert "library_open" not in entry.inner_text()
    page.fill("#chat-input", "Which file types can I add?")
    page.click("#chat-submit")
    page.get_by_text("quote only (no model)").first.wait_for(timeout=120_000)
    page.wait_for_selector("#stop-button", state="detached")
    page.goto(srv.url + "/")
    page.wait_for_selector("#chat-input")
    page.wait_for_function("id => document.querySelector('#thread-' + id)?.textContent.includes('Which file types')",
                           arg=tid, timeout=30_000)
    ctx.close()
