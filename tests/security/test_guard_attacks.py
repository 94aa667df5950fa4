"""Issue 24, items 1, 2, 5 (headers) and 8, on the two real servers (no login; three users): another website,
a DNS-rebinding page, a session id that is a path, another user's chat, public API documentation.
Each test names the attack of the issue it replays; docs/SECURITY.md lists them.
"""
from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid

import httpx
import pytest

from conftest import REPO_ROOT
from sec_client import Chat, cookie, token, upload

pytestmark = [pytest.mark.security, pytest.mark.slow]
EVIL = "http://evil.example"
QUESTION = {"model": "rag", "messages": [{"role": "user", "content": "How do I add documents?"}], "max_tokens": 8}


def _refused(answer: httpx.Response, status: int = 403) -> None:
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.status_code, answer.text[:300])
    assert "access-control-allow-origin" not in answer.headers
    assert "Local RAG Chat" not in answer.text and "passage" not in answer.text.lower()


def test_another_website_gets_neither_a_token_nor_an_answer(open_server):
    url = open_server.url
    _refused(token(open_server, origin=EVIL))  # the no-login mode's header login
    own = cookie(open_server)
    jar = {"access_token": own}
    for answer in (httpx.get(url + "/v1/models", headers={"Origin": EVIL}),
                   httpx.post(url + "/v1/chat/completions", json=QUESTION, headers={"Origin": EVIL}, timeout=60),
                   httpx.post(url + "/browser/api/context", json={"question": "x"}, headers={"Origin": EVIL}),
                   httpx.get(url + "/project/settings?language=en-US", cookies=jar, headers={"Origin": EVIL}),
                   httpx.post(url + "/project/threads", json={"pagination": {"first": 5}, "filter": {}}, cookies=jar,
                              headers={"Origin": EVIL}),
                   httpx.options(url + "/v1/chat/completions", headers={"Origin": EVIL,
                                                                         "Access-Control-Request-Method": "POST"}),
                   # an <img>/<script> tag elsewhere: no Origin, but the browser says the site is another
                   httpx.get(url + "/v1/models", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})):
        _refused(answer)
    # a "simple" cross-site POST (text/plain: no preflight) does not run either, even without an Origin
    plain = httpx.post(url + "/v1/chat/completions", content=httpx.Request("POST", url, json=QUESTION).content,
                       headers={"Content-Type": "text/plain"}, timeout=60)
    assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
    # the page's own requests still work
    assert httpx.get(url + "/v1/models", headers={"Origin": url}).status_code == 200
    assert httpx.get(url + "/project/settings?language=en-US", cookies=jar, headers={"Origin": url}).status_code == 200


def websocket_handshake(url: str, headers: dict) -> int:
    """The status of a WebSocket upgrade to Socket.IO's endpoint (101: accepted)."""
    import aiohttp

    async def attempt() -> int:
        ws_url = url.replace("http://", "ws://") + "/ws/socket.io/?EIO=4&transport=websocket"
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(ws_url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=10)):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    return asyncio.run(attempt())


def test_socket_from_another_website_is_refused(open_server):
    own = cookie(open_server)
    jar = f"access_token={own}"
    assert websocket_handshake(open_server.url, {"Origin": EVIL, "Cookie": jar}) == 403
    polling = httpx.get(open_server.url + "/ws/socket.io/?EIO=4&transport=polling", headers={"Origin": EVIL})
    _refused(polling)
    assert websocket_handshake(open_server.url, {"Origin": open_server.url, "Cookie": jar}) == 101

    async def same_origin():
        chat = Chat(open_server, own)
        await chat.connect()
        await chat.close()

    asyncio.run(same_origin())


def test_dns_rebinding_host_is_refused(open_server):
    url = open_server.url
    host = f"rebind.evil.example:{open_server.port}"
    for method, path in (("GET", "/"), ("GET", "/v1/models"), ("POST", "/auth/header"),
                         ("GET", "/ws/socket.io/?EIO=4&transport=polling"), ("GET", "/browser/")):
        answer = httpx.request(method, url + path, headers={"Host": host, "Origin": f"http://{host}"})
        assert answer.status_code == 421 and "LRC_ALLOWED_HOSTS" in answer.text, (path, answer.status_code)
        assert "access_token" not in answer.cookies
    for name in ("localhost", "127.0.0.1"):
        assert httpx.get(url + "/", headers={"Host": f"{name}:{open_server.port}"}).status_code == 200


def test_a_session_id_is_never_a_path(open_server, tmp_path):
    """Before: an upload with an absolute folder as its session id landed in that folder, and clearing the
    session deleted the folder. Now the id is refused on connect and on upload; the folder is untouched."""
    import socketio

    canary = tmp_path / "precious"
    canary.mkdir()
    (canary / "keep.txt").write_text("still here")
    own = cookie(open_server)
    for bad in (str(canary), "../../" + canary.name, str(canary) + "/../precious", "x" * 40):
        chat = Chat(open_server, own, session_id=bad)
        with pytest.raises(socketio.exceptions.ConnectionError):
            asyncio.run(chat.connect())
        answer = upload(open_server, bad, "evil.txt", b"planted", "text/plain", own)
        assert answer.status_code == 400, (bad, answer.status_code, answer.text)
    refused_thread = Chat(open_server, own, thread_id=str(canary))
    with pytest.raises(socketio.exceptions.ConnectionError):
        asyncio.run(refused_thread.connect())
    assert sorted(p.name for p in canary.iterdir()) == ["keep.txt"]
    assert (canary / "keep.txt").read_text() == "still here"

    async def good_session():  # a real id: the upload lands under .files/<id>, clean-up removes only that
        chat = Chat(open_server, own)
        await chat.connect()
        answer = chat.upload("notes.txt", b"fine", "text/plain")
        assert answer.status_code == 200, answer.text
        folder = open_server.workdir / ".files" / chat.session_id
        assert folder.is_dir() and any(folder.iterdir())
        await chat.clear()
        for _ in range(50):
            if not folder.exists():
                break
            await asyncio.sleep(0.1)
        assert not folder.exists()

    asyncio.run(good_session())
    assert (open_server.workdir / ".files").is_dir() and canary.is_dir()


def test_active_uploads_are_sandboxed_attachments(open_server):
    """Before: an uploaded .html was served inline, text/html, from the app's origin: its script ran as the app."""
    own = cookie(open_server)

    async def run():
        chat = Chat(open_server, own)
        await chat.connect()
        try:
            out = {}
            script = b"<html><body><script>fetch('/v1/models').then(r => r.text()).then(alert)</script></body></html>"
            assert chat.upload("pic.svg", script, "image/svg+xml").status_code == 400  # not an accepted type
            for name, mime in (("page.html", "text/html"), ("page.xhtml.html", "application/xhtml+xml")):
                sent = chat.upload(name, script, mime)
                assert sent.status_code == 200, sent.text
                got = httpx.get(f"{open_server.url}/project/file/{sent.json()['id']}",
                                params={"session_id": chat.session_id}, cookies={"access_token": own})
                out[name] = got
            return out
        finally:
            await chat.close()

    for name, got in asyncio.run(run()).items():
        assert got.status_code == 200, (name, got.status_code)
        assert got.headers["content-disposition"].startswith("attachment"), name
        assert got.headers["content-security-policy"].startswith("sandbox"), name
        assert got.headers["x-content-type-options"] == "nosniff"


def test_pages_confine_scripts_images_and_connections(open_server):
    for path in ("/", "/browser/", "/login"):
        page = httpx.get(open_server.url + path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
        csp = page.headers["content-security-policy"]
        for rule in ("default-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'", "frame-ancestors 'none'",
                     "object-src 'none'"):
            assert rule in csp, (path, rule)
        assert "http" not in csp and "*" not in csp, csp
        assert not re.search(r"<(?:link|script)[^>]+(?:href|src)=\"(?:https?:)?//", page.text), "nothing from elsewhere"
    # the KaTeX stylesheet Chainlit's page asks a public CDN for is the app's own copy (make browser-setup)
    page = httpx.get(open_server.url + "/").text
    assert 'href="/browser/katex/katex.min.css"' in page and "jsdelivr" not in page
    css = httpx.get(open_server.url + "/browser/katex/katex.min.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "KaTeX" in css.text
    font = re.search(r"url\((fonts/[^)]+\.woff2)\)", css.text).group(1)
    assert httpx.get(f"{open_server.url}/browser/katex/{font}").status_code == 200
    assert httpx.get(open_server.url + "/browser/katex/%2e%2e/package.json").status_code == 404


def test_nothing_public_leaks(open_server, users_server):
    for target in (open_server, users_server):
        for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
            assert httpx.get(target.url + path).status_code == 404, path
        leaks = [str(target.data_dir), str(REPO_ROOT), str(target.workdir), "2.12.0", "Python/3"]
        for path in ("/", "/auth/config", "/project/settings?language=en-US", "/browser/api/status", "/user",
                     "/health", "/v1/models", "/project/translations?language=en-US", "/nope", "/favicon"):
            answer = httpx.get(target.url + path)
            text = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
            for secret in leaks:
                assert secret not in text, (target.url, path, secret)


def _assistant_step(data_dir, user: str, timeout: float = 30.0) -> tuple[str, str]:
    """An answer in ``user``'s chat history (the history writes an answer shortly after it is shown)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(data_dir / "history.sqlite3") as db:
            row = db.execute('SELECT s."id", s."threadId" FROM steps s JOIN threads t ON t."id" = s."threadId" '
                             'WHERE t."userIdentifier" = ? AND s."type" = \'assistant_message\' LIMIT 1',
                             (user,)).fetchone()
        if row or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row, f"{user} has an answer in the history"
    return row


def test_other_users_chats_cannot_be_shared_or_rated(users_server):
    """Before: thread sharing worked although allow_thread_sharing = false; one user could write feedback on
    another's message."""
    alice, bob = cookie(users_server, "alice"), cookie(users_server, "bob")

    async def alice_asks():
        chat = Chat(users_server, alice)
        await chat.start()
        await chat.ask("How do I add documents to the library?")
        await chat.close()

    asyncio.run(alice_asks())
    step, thread = _assistant_step(users_server.data_dir, "alice")
    url, origin = users_server.url, {"Origin": users_server.url}
    feedback = {"feedback": {"forId": step, "value": 1, "threadId": thread, "comment": "bob was here"},
                "sessionId": str(uuid.uuid4())}
    answer = httpx.put(url + "/feedback", json=feedback, cookies={"access_token": bob}, headers=origin)
    assert answer.status_code == 404, answer.text
    with sqlite3.connect(users_server.data_dir / "history.sqlite3") as db:
        assert db.execute('SELECT COUNT(*) FROM feedbacks WHERE "forId" = ?', (step,)).fetchone()[0] == 0
    own = httpx.put(url + "/feedback", json={**feedback, "feedback": {**feedback["feedback"], "comment": "mine"}},
                    cookies={"access_token": alice}, headers=origin)
    assert own.status_code == 200, own.text
    feedback_id = own.json()["feedbackId"]
    gone = httpx.request("DELETE", url + "/feedback", json={"feedbackId": feedback_id}, cookies={"access_token": bob},
                         headers=origin)
    assert gone.status_code == 404
    for who in (alice, bob):
        share = httpx.put(url + "/project/thread/share", json={"threadId": thread, "isShared": True},
                          cookies={"access_token": who}, headers=origin)
        assert share.status_code == 404, share.text
    assert httpx.get(f"{url}/project/share/{thread}", cookies={"access_token": bob}).status_code == 404
    with sqlite3.connect(users_server.data_dir / "history.sqlite3") as db:
        metadata = db.execute('SELECT "metadata" FROM threads WHERE "id" = ?', (thread,)).fetchone()[0] or ""
    assert "is_shared" not in metadata


def test_password_login_from_another_website_is_refused(users_server):
    _refused(token(users_server, "alice", origin=EVIL))
    assert token(users_server, "alice").status_code == 200


def test_set_session_cookie_takes_only_a_session_id(open_server):
    """Chainlit's /set-session-cookie puts whatever it is given into a cookie that names the session folder."""
    url, origin = open_server.url, {"Origin": open_server.url}
    for bad in ("/tmp/x", "../..", "", 7):
        answer = httpx.post(url + "/set-session-cookie", json={"session_id": bad}, headers=origin)
        assert answer.status_code == 400 and "X-Chainlit-Session-id" not in answer.headers.get("set-cookie", ""), bad
    good = str(uuid.uuid4())
    answer = httpx.post(url + "/set-session-cookie", json={"session_id": good}, headers=origin)
    assert answer.status_code == 200 and good in answer.headers["set-cookie"]
    assert httpx.post(url + "/set-session-cookie", json={"session_id": good},
                      headers={"Origin": EVIL}).status_code == 403
