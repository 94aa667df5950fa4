"""Sessions end when they should (issue 24, item 4; rag.chat.sessions), against real servers: a login
token stops working at once on an authenticated HTTP route and on the Socket.IO connect after /logout,
`rag users passwd`, `rag users remove` (the real CLI, run against the server's data folder while it runs),
after a change of LRC_AUTH and after LRC_TOKEN_HOURS; password guessing gets 429 + Retry-After after
LRC_LOGIN_ATTEMPTS failures, while another user still signs in and the same user can after the wait.
The throttle's arithmetic and the cost of the token check (it runs on the event loop) are tested alone too.
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

pytestmark = [pytest.mark.security]
slow = pytest.mark.slow


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
@slow
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


@slow
def test_users_passwd_ends_the_sessions(server):
    token = sign_in(server, "bob", PASSWORDS["bob"])
    assert works(server, token) == WORKS
    new = "bob-new-secret-44"
    out = users_cli(server, "passwd", "bob", "--password-stdin", stdin=new + "\n").stdout
    assert "signed out" in out
    assert works(server, token) == REFUSED
    assert works(server, sign_in(server, "bob", new)) == WORKS
    users_cli(server, "passwd", "bob", "--password-stdin", stdin=PASSWORDS["bob"] + "\n")


@slow
def test_users_remove_ends_the_sessions(server):
    token = sign_in(server, "carol", PASSWORDS["carol"])
    assert works(server, token) == WORKS
    users_cli(server, "remove", "carol")
    assert works(server, token) == REFUSED
    # added again under the same name: the old person's token stays dead
    users_cli(server, "add", "carol", "--password-stdin", stdin=PASSWORDS["carol"] + "\n")
    assert works(server, token) == REFUSED
    assert whoami(server, sign_in(server, "carol", PASSWORDS["carol"])) == 200


@slow
def test_a_forged_or_old_style_token_is_refused(server):
    import jwt

    secret = (server.data_dir / "chainlit-auth-secret").read_text().strip()
    now = time.time()
    plain = {"identifier": "alice", "display_name": None, "metadata": {}, "iat": now, "exp": now + 3600}
    assert whoami(server, jwt.encode(plain, secret, algorithm="HS256")) == 401, \
        "a token as Chainlit alone makes it (no session version) is refused"
    assert whoami(server, jwt.encode(plain, "a different secret of 32 bytes or more", algorithm="HS256")) == 401


# ------------------------------------------------------------------------------------ guessing
@slow
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
@slow
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
        answer = httpx.post(short.url + "/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                            headers={"Origin": short.url}, timeout=30)
        made = time.monotonic()
        assert answer.status_code == 200 and "max-age=3;" in answer.headers["set-cookie"].lower(), \
            "the cookie lives as long as the token"
        token = answer.cookies["access_token"]
        assert whoami(short, token) == 200 and socket_connects(short, token)
        time.sleep(max(0.0, made + 4.0 - time.monotonic()))
        assert works(short, token) == REFUSED, "a token older than LRC_TOKEN_HOURS is refused"
    finally:
        chainlit_server.stop(short.proc)


# ------------------------------------------------------------------------------------ the parts alone
def test_the_throttle_counts_per_name_and_per_address():
    from rag.chat.sessions import LoginThrottle

    t = LoginThrottle(3, window=600, backoff=30, cap=120, address_factor=4)
    assert [t.begin("alice", "10.0.0.1", now=i) for i in range(3)] == [0, 0, 0]  # three tries, all failed
    assert t.begin("alice", "10.0.0.2", now=3) == pytest.approx(29), "the name is held from any address"
    assert t.begin("ALICE", "10.0.0.2", now=3) > 0, "whatever the case"
    assert t.begin("bob", "10.0.0.1", now=3) == 0, "another name from the same address still tries"
    assert t.begin("alice", "10.0.0.1", now=32.5) == 0, "after the back-off one more try"
    assert t.begin("alice", "10.0.0.1", now=33) == pytest.approx(59.5), "which doubles the next wait"
    for i in range(8):
        t.begin("alice", "10.0.0.1", now=1000 + i * 200)
    assert t.begin("alice", "10.0.0.1", now=2401) <= 120, "capped"
    t.succeeded("alice", "10.0.0.1")
    assert t.begin("alice", "10.0.0.1", now=2402) == 0, "a success clears the count"


def test_the_throttle_holds_an_address_that_guesses_many_names():
    from rag.chat.sessions import LoginThrottle

    t = LoginThrottle(3, window=600, backoff=30, cap=120, address_factor=4)
    waits = [t.begin(f"user{i}", "10.0.0.9", now=i) for i in range(13)]
    assert waits[:12] == [0] * 12 and waits[12] > 0, waits
    assert t.begin("user99", "10.0.0.8", now=13) == 0, "another address is not held"
    assert t.begin("user99", "10.0.0.9", now=12 + 600.5) == 0, "old failures leave the window"


def test_the_throttle_stays_small():
    from rag.chat.sessions import LoginThrottle

    t = LoginThrottle(3, max_keys=100)
    for i in range(1000):
        t.begin(f"user{i}", f"10.0.{i // 250}.{i % 250}", now=i)
    assert len(t._failures) <= 100


@pytest.fixture
def password_env(tmp_path, monkeypatch):
    from rag.users import Users

    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LRC_AUTH", "password")
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "a test secret of forty-eight characters, or so..")
    Users(tmp_path / "users.sqlite3").add("alice", PASSWORDS["alice"])
    return tmp_path


def test_the_token_check_is_cheap_enough_for_the_event_loop(password_env):
    import chainlit as cl

    from rag.chat import sessions

    from chainlit.auth.jwt import decode_jwt as chainlits_own

    token = sessions.make_token(cl.User(identifier="alice"))
    assert sessions.decode_token(token).identifier == "alice" and chainlits_own(token).identifier == "alice"

    def per_call(decode) -> float:
        n, started = 500, time.perf_counter()
        for _ in range(n):
            decode(token)
        return (time.perf_counter() - started) / n

    ours, theirs = per_call(sessions.decode_token), per_call(chainlits_own)
    print(f"token check with the session version read: {ours * 1e6:.0f} us (Chainlit's decode alone: "
          f"{theirs * 1e6:.0f} us)")
    assert ours < 0.010, f"{ours * 1e3:.2f} ms per token check"
    assert ours < 5 * theirs + 0.001, "the checks add little to Chainlit's own decoding"


def test_a_renewed_token_keeps_its_login_time(password_env, monkeypatch):
    """POST /auth/jwt swaps a token for a fresh one (decode, then create, in one request): the fresh one
    must not outlive LRC_TOKEN_HOURS counted from the password login."""
    import contextvars

    import chainlit as cl
    import jwt

    from rag.chat import sessions

    token = sessions.make_token(cl.User(identifier="alice"))
    login = jwt.decode(token, options={"verify_signature": False})["lrc_login"]
    time.sleep(0.05)

    def renew():
        return sessions.make_token(sessions.decode_token(token))

    renewed = jwt.decode(contextvars.copy_context().run(renew), options={"verify_signature": False})
    assert renewed["lrc_login"] == login and renewed["exp"] == pytest.approx(login + 24 * 3600)
    monkeypatch.setenv("LRC_AUTH", "none")
    with pytest.raises(sessions.SessionEnded, match="another login mode"):
        sessions.decode_token(token)
