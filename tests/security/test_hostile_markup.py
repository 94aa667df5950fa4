"""Issue 24, item 5 (rendering): a document whose text holds Markdown and HTML that would make the reader's
browser contact another host or run script — remote images (inline, reference-style, an <img> tag, inside
a code span of a .md file), javascript: and data: links, autolinks, a line that closes the side view's
code block — is dropped into the real chat (no login), asked about, its source opened in the side view,
its Retrieval step opened, the Library view opened; the same question goes to /v1/chat/completions.
A "beacon" HTTP server on another port of this machine records every request: it gets none; no
javascript:/data: link and no image from it exists in the page; the markup is shown as the text it is.
"""
from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from markdown_it import MarkdownIt

import chainlit_server  # tests/e2e (on the path through tests/security/conftest.py)
from conftest import REPO_ROOT
from rag.markup import JOINER

pytestmark = [pytest.mark.security, pytest.mark.slow]
MESSAGES = '[data-step-type="assistant_message"]'
QUESTION = "How often is the Quorvane filter rinsed with cold water?"
TXT_NAME = "quorvane-filter.txt"


class Beacon:
    """An HTTP server on a free 127.0.0.1 port that records every request's path (answers a 1x1 GIF)."""

    GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

    def __init__(self):
        self.paths: list[str] = []
        beacon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                beacon.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(Beacon.GIF)))
                self.end_headers()
                self.wfile.write(Beacon.GIF)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by Playwright, as tests/e2e starts it (tests/browser_launch.py)."""
    from browser_launch import launch
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture(scope="module")
def beacon():
    b = Beacon()
    yield b
    b.close()


def hostile_text(b: Beacon) -> str:
    u = b.url
    return (
        "The Quorvane filter\n\n"
        f"The Quorvane filter is rinsed with cold water every 9 days ![status]({u}/inline.png) as the label says.\n"
        "```\n"  # closes the code block the side view puts a passage in, if nothing stops it
        f"The Quorvane filter fence trick ![fence]({u}/fence.png) rinsed with cold water.\n"
        "```\n"
        f"The Quorvane filter picture <img src=\"{u}/tag.png\"> shows the rinsing with cold water.\n"
        f"The Quorvane filter manual [open it](javascript:fetch('{u}/js')) says to rinse with cold water.\n\n"
        f"The Quorvane filter housing ![housing][pic] is rinsed with cold water after each season.\n"
        f"The Quorvane filter data sheet [here](data:text/html,<script>fetch('{u}/data')</script>) covers rinsing.\n"
        f"The Quorvane filter page <{u}/autolink> and <javascript:alert(1)> list the rinsing days.\n\n"
        f"[pic]: {u}/ref.png\n"
    )


SHOWN = ["![status](", "/inline.png)", "![housing][pic]", "[open it](javascript:", "<img src=", "/tag.png"]


def _plain(text: str) -> str:
    return " ".join(text.replace(JOINER, "").split())


def _dom_report(page, port: int) -> dict:
    """What in the page could reach another host or run script."""
    return page.evaluate("""port => {
        const all = [...document.querySelectorAll('*')];
        const badHref = (v) => v && /^\\s*(javascript|data|vbscript|file):/i.test(v);
        const badSrc = (v) => v && /^\\s*(javascript|vbscript):/i.test(v);
        return {
          scriptLinks: all.filter(e => badHref(e.getAttribute('href')) || badSrc(e.getAttribute('src')))
              .map(e => e.outerHTML),
          beaconImages: [...document.querySelectorAll('img, video, source, iframe, object, embed')]
              .filter(e => (e.getAttribute('src') || e.getAttribute('data') || '').includes(':' + port))
              .map(e => e.outerHTML),
          foreignImages: [...document.querySelectorAll('img')].map(e => e.src)
              .filter(s => s && !s.startsWith(location.origin) && !s.startsWith('data:') && !s.startsWith('blob:')),
        };
    }""", port)


def _wait(predicate, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout:.0f} s{log()}")


def test_a_hostile_document_makes_the_page_contact_no_other_host(open_server, beacon, browser, tmp_path):
    txt = tmp_path / TXT_NAME
    txt.write_text(hostile_text(beacon), encoding="utf-8")
    md = tmp_path / "quorvane-notes.md"  # a .md file keeps code spans as text: the markup inside reaches passages
    md.write_text(f"# Quorvane notes\n\nThe Quorvane filter rinse uses cold water `![code]({beacon.url}/code.png)` "
                  "every 9 days.\n", encoding="utf-8")
    requested, dialogs = [], []
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        ctx.on("request", lambda r: requested.append(r.url))
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.set_default_timeout(60_000)
        page.goto(open_server.url + "/")
        page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)

        page.set_input_files("#upload-button-input", [str(txt), str(md)])
        page.get_by_text("quorvane-notes.md").first.wait_for()
        page.fill("#chat-input", QUESTION)
        page.click("#chat-submit")
        texts = lambda: "\n".join(page.locator(MESSAGES).all_text_contents())  # noqa: E731
        _wait(lambda: "Sources:" in texts() and "quote only" in texts(), 300, "no answer with sources",
              lambda: f"; messages: {texts()[-2000:]}\nserver log:\n{open_server.log_tail()}")
        page.wait_for_selector("#stop-button", state="detached")
        answer = page.locator(MESSAGES).last.text_content() or ""
        assert "Quorvane" in answer and "Indexing 2 file(s): done" in texts(), texts()[-3000:]

        # the answer's quote shows the markup as text (which sentences it quotes is the quote's choice)
        shown = _plain(answer)
        assert any(s in shown for s in SHOWN), shown

        # the side view: every source of the answer, opened in turn (the passage as text, its fence kept)
        links = page.locator(MESSAGES).last.get_by_role("link", name=re.compile(r"\[\d\] quorvane"))
        side_text = ""
        for i in range(links.count()):
            name = links.nth(i).text_content()
            links.nth(i).click()
            page.wait_for_function("n => document.querySelector('#side-view-title')?.textContent.includes(n)", arg=name)
            time.sleep(0.5)
            side_text += page.locator("#side-view-content").text_content() or ""
        side = _plain(side_text)
        assert links.count() >= 1 and f"![status]({beacon.url}/inline.png)" in side, (answer, side[:3000])
        assert f"![fence]({beacon.url}/fence.png)" in side and f"<img src=\"{beacon.url}/tag.png\">" in side, side

        # the Retrieval step, opened
        step = page.locator('[data-step-type="retrieval"]').last
        step.get_by_role("button").first.click()
        time.sleep(0.5)
        assert "inline.png" in _plain(step.text_content() or "")

        # the Library view (React text, no Markdown there): both documents listed
        page.locator(MESSAGES).get_by_role("button", name="Library", exact=True).first.click()
        page.wait_for_selector("#library-view")
        view = page.locator("#library-view").last
        view.get_by_text("quorvane-notes.md").wait_for()
        assert TXT_NAME in (view.text_content() or ""), view.text_content()

        time.sleep(2)  # anything the page would fetch has been asked for by now
        report = _dom_report(page, beacon.port)
        assert report == {"scriptLinks": [], "beaconImages": [], "foreignImages": []}, report
        assert beacon.paths == [], f"the page contacted the beacon: {beacon.paths}"
        assert not [u for u in requested if f":{beacon.port}" in u], requested
        assert dialogs == [], f"script ran: {dialogs}"

        # the control: the same browser does reach the beacon when a page asks it to
        control = ctx.new_page()
        control.set_content(f'<img src="{beacon.url}/control.gif">')
        _wait(lambda: "/control.gif" in beacon.paths, 20, "the beacon was not reachable from chromium")
    finally:
        ctx.close()


def _inert(content: str) -> None:
    render = MarkdownIt("commonmark", {"html": True})
    render.validateLink = lambda url: True  # a client that trusts every URL
    html = render.render(content)
    assert "<img" not in html and "<script" not in html, html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(re.match(r"(https?:|mailto:)", h, re.I) for h in hrefs), hrefs


def test_v1_answers_carry_no_live_markup(open_server, beacon, tmp_path):
    """The same kind of document, indexed from the command line into the running server's library, asked
    about over /v1 (streamed and not): the content and each source's text keep the markup only as text."""
    source = tmp_path / "zentrilo.txt"
    source.write_text(hostile_text(beacon).replace("Quorvane", "Zentrilo"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "rag", "index", "--quiet", str(source)], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=chainlit_server.base_env(open_server.data_dir),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    question = {"model": "rag", "messages": [{"role": "user", "content": QUESTION.replace("Quorvane", "Zentrilo")}],
                "max_tokens": 16}
    headers = {"Content-Type": "application/json", "Origin": open_server.url}
    answer = httpx.post(open_server.url + "/v1/chat/completions", content=json.dumps(question), headers=headers,
                        timeout=300)
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    content, sources = body["choices"][0]["message"]["content"], body["sources"]
    assert "Zentrilo" in content and any("inline.png" in s["text"] for s in sources), body
    _inert(content)
    for s in sources:
        _inert(s["text"])
        if "Zentrilo" in s["text"]:  # the passage, with only joiners added
            assert _plain(s["text"]) in _plain(source.read_text(encoding="utf-8")), s["text"]
            assert JOINER in s["text"]
    streamed = []
    with httpx.stream("POST", open_server.url + "/v1/chat/completions", headers=headers, timeout=300,
                      content=json.dumps({**question, "stream": True})) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                streamed.append(chunk["choices"][0]["delta"].get("content") or "" if chunk.get("choices") else "")
    text = "".join(streamed)
    assert "Zentrilo" in text, text
    _inert(text)
    assert all(p == "/control.gif" for p in beacon.paths), beacon.paths  # only the other test's control
