"""Another website, in a real browser (Debian's headless chromium): a page served from another origin tries to read the
library with fetch (with the user's cookies), to post a question without a preflight, to get the no-login
token, and to open the chat's WebSocket; a DNS-rebinding name pointed at 127.0.0.1 gets no page. And the
app's own page still works under its Content-Security-Policy (no violation reported)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from browser_launch import launch  # tests/: the browser every browser test drives

pytestmark = [pytest.mark.security, pytest.mark.slow, pytest.mark.e2e]


ATTACK = """
async function attempt(name, run) {
  try { results[name] = await run(); } catch (e) { results[name] = "blocked: " + e; }
}
window.results = {};
(async () => {
  await attempt("read_models", async () => (await fetch(APP + "/v1/models", {credentials: "include"})).text());
  await attempt("read_settings", async () =>
      (await fetch(APP + "/project/settings?language=en-US", {credentials: "include"})).text());
  await attempt("get_token", async () =>
      (await fetch(APP + "/auth/header", {method: "POST", credentials: "include"})).text());
  await attempt("ask_json", async () => (await fetch(APP + "/v1/chat/completions", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: QUESTION})).text());
  // no-cors: the browser sends it without a preflight and hides the answer; the server must not run it
  await attempt("ask_plain", async () => { await fetch(APP + "/v1/chat/completions", {method: "POST",
      mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: QUESTION}); return "sent"; });
  await attempt("socket", () => new Promise(resolve => {
      const ws = new WebSocket(APP.replace("http", "ws") + "/ws/socket.io/?EIO=4&transport=websocket");
      ws.onopen = () => resolve("open");
      ws.onerror = () => resolve("blocked: error");
      setTimeout(() => resolve("blocked: timeout"), 8000);
  }));
  window.done = true;
})();
"""


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


@pytest.fixture
def chromium():
    """Runs ``work(playwright)`` in a thread of its own with its own Playwright: the e2e suite's session-wide
    Playwright (and any event loop left running in this thread) would make a second sync_playwright() here
    refuse to start. ``browser_launch.launch`` fails the test when the browser is missing."""
    def run(work):
        from concurrent.futures import ThreadPoolExecutor

        from playwright.sync_api import sync_playwright

        def in_thread():
            with sync_playwright() as pw:
                return work(pw)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(in_thread).result()

    return run


def test_a_page_on_another_origin_reads_nothing(open_server, chromium):
    question = json.dumps({"model": "rag", "messages": [{"role": "user", "content": "secret?"}], "max_tokens": 4})
    script = f"const APP = {json.dumps(open_server.url)}; const QUESTION = {json.dumps(question)};" + ATTACK
    _Attacker.page = f"<html><body><h1>Totally harmless</h1><script>{script}</script></body></html>".encode()
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()

    def attack(pw):
        browser = launch(pw)
        try:
            ctx = browser.new_context()
            own = ctx.new_page()
            own.goto(open_server.url + "/")  # the user has the app open: its cookie is in this browser
            own.wait_for_selector("#chat-input", timeout=120_000)
            assert any(c["name"] == "access_token" for c in ctx.cookies()), "the app's own page got its token"
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
            page.wait_for_function("window.done === true", timeout=60_000)
            return page.evaluate("window.results")
        finally:
            browser.close()

    try:
        results = chromium(attack)
    finally:
        evil.shutdown()
    for name in ("read_models", "read_settings", "get_token", "ask_json"):
        assert str(results[name]).startswith("blocked"), (name, results[name])
    assert results["socket"].startswith("blocked"), results["socket"]
    assert results["ask_plain"] == "sent"  # the browser sent it; the server refused it (415, not run):
    assert "secret?" not in open_server.log_tail(200_000)


def test_dns_rebinding_name_gets_no_page(open_server, chromium):
    rules = "--host-resolver-rules=MAP rebind.test 127.0.0.1"

    def visit(pw):
        browser = launch(pw, rules)
        try:
            page = browser.new_page()
            answer = page.goto(f"http://rebind.test:{open_server.port}/")
            return (answer.status, page.content(),
                    page.evaluate("async () => (await fetch('/v1/models')).status"))
        finally:
            browser.close()

    status, content, fetched = chromium(visit)
    assert status == 421 and fetched == 421
    assert "Local RAG Chat" not in content


def test_the_apps_own_page_works_under_its_policy(open_server, chromium):
    violations, outside = [], []

    def use(pw):
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((open_server.url, "data:", "blob:")) else None)
            page.goto(open_server.url + "/")
            page.wait_for_selector("#chat-input", timeout=120_000)
            page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
            page.fill("#chat-input", "/Library")
            page.keyboard.press("Enter")
            page.wait_for_timeout(3000)
            page.goto(open_server.url + "/browser/")
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()

    chromium(use)
    assert violations == [], violations
    assert outside == [], outside
