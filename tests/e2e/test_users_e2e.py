"""Users kept apart (LRC_AUTH=password), on a real Chainlit server with chromium, and the start-up rule.

Alice signs in, drops a file and asks about it; Bob signs in on the same server: he cannot list, open or
fetch Alice's chat or its files (by id, by URL, over the socket), and his questions never search her
upload. Without a login, the server refuses to listen beyond this machine.
"""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO_ROOT, free_port, launch
import chainlit_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}
FACT = "The Quillon relay in the east wing is reset with the blue key after every storm."
QUESTION = "How is the Quillon relay reset?"
ANSWER = '[data-step-type="assistant_message"]'


@pytest.fixture(scope="module")
def users_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("users-server")
    for name, password in PASSWORDS.items():
        done = subprocess.run([sys.executable, "-m", "rag", "users", "add", name, "--password-stdin"],
                              input=password + "\n", text=True, capture_output=True, cwd=REPO_ROOT,
                              env=chainlit_server.base_env(root / "data"))
        assert done.returncode == 0, done.stderr
    srv = launch(root, LRC_AUTH="password", LRC_ANSWER_STYLE="quote")
    yield srv
    chainlit_server.stop(srv.proc)


def sign_in(browser, url: str, name: str, screenshot=None):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + "/")
    page.get_by_text("User name").wait_for()  # Chainlit's form says "Email address"; here users have names
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    page.fill("#email", name)
    page.fill("#password", PASSWORDS[name])
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_selector("#chat-input", timeout=120_000)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    return ctx, page


def cookie_of(ctx) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())


def request(url: str, cookie: str = "", body: dict | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Cookie": cookie} if cookie else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def test_each_user_sees_only_their_own_chats_and_files(users_server, browser, screenshots, tmp_path):
    srv = users_server
    assert request(srv.url + "/auth/config")[1].count('"passwordAuth":true'), "the server asks for a login"
    notes = tmp_path / "alice-notes.txt"
    notes.write_text(f"Maintenance notes.\n\n{FACT}\n")

    a_ctx, alice = sign_in(browser, srv.url, "alice", screenshots / "login.png")
    alice.set_input_files("#upload-button-input", [str(notes)])
    alice.fill("#chat-input", QUESTION)
    alice.click("#chat-submit")
    alice.get_by_text("quote only (no model)").first.wait_for(timeout=240_000)
    alice.wait_for_selector("#stop-button", state="detached")
    time.sleep(1.5)
    assert "alice-notes.txt" in "\n".join(alice.locator(ANSWER).all_text_contents())
    tid = re.search(r"/thread/([0-9a-f-]{36})", alice.url).group(1)
    stored = list((srv.data_dir / "uploads" / "users" / "alice").rglob("alice-notes.txt"))
    assert stored, "Alice's upload is stored in her own folder"

    with sqlite3.connect(srv.data_dir / "history.sqlite3") as db:
        user_id, element_id = db.execute(
            'SELECT t."userId", e."id" FROM elements e JOIN threads t ON t."id" = e."threadId" '
            'WHERE t."id" = ?', (tid,)).fetchone()
    file_url = f"{srv.url}/history/file/{user_id}/{element_id}"
    alice_cookie = cookie_of(a_ctx)
    status, body = request(file_url, alice_cookie)
    assert status == 200 and "Quillon" in body, "Alice reads her own source passage"
    assert request(f"{srv.url}/project/thread/{tid}", alice_cookie)[0] == 200

    b_ctx, bob = sign_in(browser, srv.url, "bob")
    bob_cookie = cookie_of(b_ctx)
    # by id, by URL, in the list: "not found", never the content
    status, body = request(f"{srv.url}/project/thread/{tid}", bob_cookie)
    assert status == 404 and "Quillon" not in body, (status, body)
    status, body = request(file_url, bob_cookie)
    assert status == 404 and "Quillon" not in body, (status, body)
    status, body = request(f"{srv.url}/project/threads", bob_cookie,
                           {"pagination": {"first": 50}, "filter": {}})
    assert status == 200 and tid not in body, body
    assert request(f"{srv.url}/project/thread/{tid}")[0] == 401, "no login, no chat"
    status, body = request(file_url)
    assert status == 401 and "Quillon" not in body, "no login, no file"
    assert bob.locator(f"#thread-{tid}").count() == 0, "Alice's chat is not in Bob's chat list"
    # over the socket: opening Alice's chat's address shows none of it
    bob.goto(f"{srv.url}/thread/{tid}")
    bob.wait_for_selector("#chat-input")
    time.sleep(3)
    assert "Quillon" not in bob.inner_text("body")
    # and Bob's question never searches Alice's upload
    bob.goto(srv.url + "/")
    bob.wait_for_selector("#chat-input")
    bob.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=60_000)
    bob.fill("#chat-input", QUESTION)
    bob.click("#chat-submit")
    bob.wait_for_function("() => [...document.querySelectorAll('[data-step-type=\"assistant_message\"]')]"
                          ".some(e => /do not seem to answer|quote only|nothing/i.test(e.textContent))",
                          timeout=120_000)
    bob.wait_for_selector("#stop-button", state="detached")
    seen = bob.inner_text("body")
    assert "alice-notes.txt" not in seen and "blue key" not in seen, seen[-1500:]
    bob.screenshot(path=str(screenshots / "users-bob-does-not-see-alice.png"))
    a_ctx.close()
    b_ctx.close()


def test_no_login_means_this_machine_only(tmp_path):
    workdir = chainlit_server.prepare_workdir(tmp_path / "app")
    env = chainlit_server.base_env(tmp_path / "data")
    env.pop("LRC_AUTH", None)
    done = subprocess.run([str(chainlit_server.CHAINLIT), "run", "app.py", "--headless", "--host", "0.0.0.0",
                           "--port", str(free_port())], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=180)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said[-2000:]
    assert "will not listen on '0.0.0.0' without a login" in said and "LRC_AUTH=password" in said, said[-2000:]
