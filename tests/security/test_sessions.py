"""Sessions end when they should (issue 24, item 4; rag.chat.sessions), against real servers: a login
token stops working at once on an authenticated HTTP route and on the Socket.IO connect after /logout,
`rag users passwd`, `rag users remove` (the real CLI, run against the server's data folder while it runs),
after a change of LRC_AUTH and after LRC_TOKEN_HOURS; password guessing gets 429 + Retry-After after
LRC_LOGIN_ATTEMPTS failures, while another user still signs in and the same user can after the wait.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import httpx
import pytest

import chainlit_server
from conftest import PASSWORDS, REPO_ROOT, start

pytestmark = [pytest.mark.security, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A password server of this module's own (users are changed and removed here)."""
    target = start(tmp_path_factory.mktemp("sec-sessions"), users=True)
    yield target
    chainlit_server.stop(target.proc)


# ------------------------------------------------------------------------------------ speaking to it
def sign_in(target, name: str, password: str) -> str:
    """POST /login as the login page does; the token Chainlit sets in its `access_token` cookie."""
    answer = httpx.post(target.url + "/login", data={"username": name, "password": password},
                        headers={"Origin": target.url}, timeout=30)
    assert answer.status_code == 200, (name, answer.status_code, answer.text)
    return answer.cookies["access_token"]


def whoami(target, token: str, how: str = "cookie") -> int:
    """GET /user (Chainlit's get_current_user) with the token as the browser sends it or as a Bearer."""
    if how == "cookie":
        return httpx.get(target.url + "/user", cookies={"access_token": token}, timeout=30).status_code
    return httpx.get(target.url + "/user", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def threads(target, token: str) -> int:
    """POST /project/threads: the chat history's listing (authenticated, a data layer behind it)."""
    return httpx.post(target.url + "/project/threads", cookies={"access_token": token},
                      json={"pagination": {"first": 5}, "filter": {}},
                      headers={"Origin": target.url}, timeout=30).status_code


def socket_connects(target, token: str) -> bool:
    """A Socket.IO connect as Chainlit's page makes it (the token in the cookie, a UUID session id)."""
    import socketio

    async def attempt() -> bool:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(target.url, socketio_path="/ws/socket.io", transports=["websocket"],
                                 headers={"Cookie": f"access_token={token}", "Origin": target.url},
                                 auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "{}",
                                       "chatProfile": None, "threadId": None}, wait_timeout=20)
        except socketio.exceptions.ConnectionError:
            return False
        await client.disconnect()
        return True

    return asyncio.run(attempt())


def works(target, token: str) -> dict:
    return {"user": whoami(target, token), "bearer": whoami(target, token, "bearer"),
            "threads": threads(target, token), "socket": socket_connects(target, token)}


WORKS = {"user": 200, "bearer": 200, "threads": 200, "socket": True}
REFUSED = {"user": 401, "bearer": 401, "threads": 401, "socket": False}


def users_cli(target, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "rag", "users", *args], input=stdin, text=True,
                          capture_output=True, cwd=REPO_ROOT, env=chainlit_server.base_env(target.data_dir),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


# ------------------------------------------------------------------------------------ ending sessions
def test_logout_ends_every_token_of_the_user(server):
    token = sign_in(server, "alice", PASSWORDS["alice"])
    other_browser = sign_in(server, "alice", PASSWORDS["alice"])
    bob = sign_in(server, "bob", PASSWORDS["bob"])
    assert works(server, token) == WORKS
    out = httpx.post(server.url + "/logout", cookies={"access_token": token}, headers={"Origin": server.url},
                     timeout=30)
    assert out.status_code == 200, out.text
    assert works(server, token) == REFUSED
    assert works(server, other_browser) == REFUSED, "logout signs the user out in every browser"
    assert whoami(server, bob) == 200, "another user's session goes on"
    assert works(server, sign_in(server, "alice", PASSWORDS["alice"])) == WORKS, "and she can sign in again"


def test_users_passwd_ends_the_sessions(server):
    token = sign_in(server, "bob", PASSWORDS["bob"])
    assert works(server, token) == WORKS
    new = "bob-new-secret-44"
    out = users_cli(server, "passwd", "bob", "--password-stdin", stdin=new + "\n").stdout
    assert "signed out" in out
    assert works(server, token) == REFUSED
    assert works(server, sign_in(server, "bob", new)) == WORKS
    users_cli(server, "passwd", "bob", "--password-stdin", stdin=PASSWORDS["bob"] + "\n")


def test_users_remove_ends_the_sessions(server):
    token = sign_in(server, "carol", PASSWORDS["carol"])
    assert works(server, token) == WORKS
    users_cli(server, "remove", "carol")
    assert works(server, token) == REFUSED
    # added again under the same name: the old person's token stays dead
    users_cli(server, "add", "carol", "--password-stdin", stdin=PASSWORDS["carol"] + "\n")
    assert works(server, token) == REFUSED
    assert whoami(server, sign_in(server, "carol", PASSWORDS["carol"])) == 200


def test_a_forged_or_old_style_token_is_refused(server):
    import jwt

    secret = (server.data_dir / "chainlit-auth-secret").read_text().strip()
    now = time.time()
    plain = {"identifier": "alice", "display_name": None, "metadata": {}, "iat": now, "exp": now + 3600}
    assert whoami(server, jwt.encode(plain, secret, algorithm="HS256")) == 401, \
        "a token as Chainlit alone makes it (no session version) is refused"
    assert whoami(server, jwt.encode(plain, "a different secret of 32 bytes or more", algorithm="HS256")) == 401


# ------------------------------------------------------------------------------------ guessing
def test_password_guessing_is_slowed_without_locking_out(server):
    attempts = 5  # the default of settings().login_attempts
    codes, started = [], time.monotonic()
    for i in range(10):
        answer = httpx.post(server.url + "/login", data={"username": "alice", "password": f"wrong-guess-{i}"},
                            headers={"Origin": server.url}, timeout=30)
        codes.append((answer.status_code, answer.headers.get("retry-after")))
    assert [c for c, _ in codes] == [401] * attempts + [429] * (10 - attempts), codes
    retry = int(codes[-1][1])
    assert 1 <= retry <= 30, codes
    print(f"10 wrong passwords: {time.monotonic() - started:.2f} s, {codes.count((401, None))} tried, "
          f"then 429 Retry-After {retry} s")
    late = httpx.post(server.url + "/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                      headers={"Origin": server.url}, timeout=30)
    assert late.status_code == 429, "while the wait lasts even the right password waits"
    assert whoami(server, sign_in(server, "bob", PASSWORDS["bob"])) == 200, "another user signs in meanwhile"
    time.sleep(int(late.headers["retry-after"]) + 0.5)
    assert whoami(server, sign_in(server, "alice", PASSWORDS["alice"])) == 200, "the real user gets in after it"
    wrong = httpx.post(server.url + "/login", data={"username": "alice", "password": "one typo"},
                       headers={"Origin": server.url}, timeout=30)
    assert wrong.status_code == 401, "a success cleared her count"


# ------------------------------------------------------------------------------------ mode and lifetime
def test_a_change_of_login_mode_or_the_lifetime_ends_tokens(tmp_path):
    first = start(tmp_path, users=True)
    try:
        password_token = sign_in(first, "alice", PASSWORDS["alice"])
        assert works(first, password_token) == WORKS
    finally:
        chainlit_server.stop(first.proc)

    no_login = start(tmp_path, workdir=first.workdir)  # the same data folder, LRC_AUTH=none
    try:
        local = httpx.post(no_login.url + "/auth/header", headers={"Origin": no_login.url}, timeout=30)
        assert local.status_code == 200, local.text
        local_token = local.cookies["access_token"]
        assert works(no_login, local_token) == WORKS
        assert works(no_login, password_token) == REFUSED, "a password-mode token is void without logins"
    finally:
        chainlit_server.stop(no_login.proc)

    short = start(tmp_path, users=True, workdir=first.workdir, LRC_TOKEN_HOURS="0.001")  # 3.6 s
    try:
        assert works(short, local_token) == REFUSED, "the no-login mode's token is void with logins"
        assert works(short, password_token) == REFUSED
        token = sign_in(short, "alice", PASSWORDS["alice"])
        made = time.monotonic()
        assert whoami(short, token) == 200 and socket_connects(short, token)
        time.sleep(max(0.0, made + 4.0 - time.monotonic()))
        assert works(short, token) == REFUSED, "a token older than LRC_TOKEN_HOURS is refused"
    finally:
        chainlit_server.stop(short.proc)
