"""Chat login tokens that end when they should, and password guessing slowed down.

Chainlit (2.12.0, which we cannot change) signs a JWT at login that it accepts for 15 days and cannot
revoke: /logout only deletes the browser's cookie. ``install(app)`` (called by rag.chat.auth when a login
is configured) hooks it so that a token also carries the login mode and the user's session version
(rag.users), and is checked on every use:

- ``decode_jwt``, under both names Chainlit calls it by (``chainlit.auth.decode_jwt``, used by
  ``authenticate_user`` behind the ``get_current_user`` dependency of every authenticated HTTP route,
  rag.chat.history's file route included, and by the Socket.IO connect handler; and
  ``chainlit.server.decode_jwt``, which server.py imported by name for POST /auth/jwt, a route that
  swaps a token for a fresh one and so must not revive an ended one). A token is refused when it was
  made under another LRC_AUTH mode (the no-login mode's header login gives everyone "local"; a token
  from one mode must not work in the other), when it is older than ``settings().token_hours`` (counted
  from the password or header login, so /auth/jwt cannot stretch it), or, with LRC_AUTH=password,
  when its session version is not the user's current one (a removed user has none).
- ``chainlit.server.create_jwt`` (and ``chainlit.auth.create_jwt``): the claims above; the expiry and
  the cookie's max-age follow ``settings().token_hours`` instead of Chainlit's 15 days.
- POST /login and POST /logout: routes in front of Chainlit's that call Chainlit's own handlers.
  Logout first gives the token's user a new session version, so every token of theirs ends, in every
  browser; `python -m rag users remove | passwd | logout` do the same from another process.
  Login goes through ``LoginThrottle``.

The version check is one indexed SQLite read (WAL: readers never wait for the CLI's writes; a connection
kept open per thread, ~12 us), made where Chainlit decodes, which is synchronous code on the event loop:
tests/security/test_sessions.py measures a whole check at ~0.3 ms, of which Chainlit's own decoding is
~0.2 ms. An open Socket.IO connection is not
cut when its token ends; its next connect is refused.
"""
from __future__ import annotations

import asyncio
import contextvars
import hmac
import math
import threading
import time
from collections import deque
from pathlib import Path

import jwt as pyjwt
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from rag.config import settings

__all__ = ["install", "LoginThrottle", "SessionEnded", "make_token", "check_token", "throttle"]

AUTH_CLAIM, VERSION_CLAIM, LOGIN_CLAIM = "lrc_auth", "lrc_session", "lrc_login"
_CLAIMS = ("exp", "iat", AUTH_CLAIM, VERSION_CLAIM, LOGIN_CLAIM)


class SessionEnded(pyjwt.InvalidTokenError):
    """A well-signed token that may no longer be used (Chainlit answers 401 / refuses the socket)."""


# ------------------------------------------------------------------------------------ tokens
_users_lock = threading.Lock()
_users_cache: tuple[Path, object] | None = None


def _users(config=None):
    """One rag.users.Users per data folder (opening one writes the schema: not once per request)."""
    global _users_cache
    from rag.users import DB_NAME, Users

    path = (config or settings()).data_dir / DB_NAME
    with _users_lock:
        if _users_cache is None or _users_cache[0] != path:
            _users_cache = (path, Users(path))
        return _users_cache[1]


def _lifetime(config=None) -> float:
    return max(1.0, (config or settings()).token_hours * 3600.0)


# The login time of the token that this request decoded, so that /auth/jwt's fresh token keeps it.
_decoded_login: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar("lrc_login", default=None)


def make_token(user) -> str:
    """Chainlit's create_jwt with our claims: the login mode, the session version (LRC_AUTH=password),
    when the user logged in, and an expiry ``token_hours`` after that."""
    from chainlit.auth.jwt import get_jwt_secret

    now, config = time.time(), settings()
    renewed = _decoded_login.get()
    login = renewed[1] if renewed and renewed[0] == user.identifier else now
    claims = dict(user.to_dict(), iat=now, exp=login + _lifetime(config),
                  **{AUTH_CLAIM: config.auth, LOGIN_CLAIM: login})
    if config.auth == "password":
        version = _users(config).session_version(user.identifier)
        if version is None:
            raise SessionEnded(f"There is no user named {user.identifier!r}.")
        claims[VERSION_CLAIM] = version
    return pyjwt.encode(claims, get_jwt_secret(), algorithm="HS256")


def check_token(token: str) -> dict:
    """The token's claims if it may be used now; SessionEnded (or another InvalidTokenError) if not."""
    from chainlit.auth.jwt import get_jwt_secret

    claims = pyjwt.decode(token, get_jwt_secret(), algorithms=["HS256"],
                          options={"require": ["exp", "iat", "identifier"]})
    config = settings()
    if claims.get(AUTH_CLAIM) != config.auth:
        raise SessionEnded("The token was made under another login mode (LRC_AUTH).")
    login = claims.get(LOGIN_CLAIM)
    if not isinstance(login, (int, float)) or time.time() - login > _lifetime(config):
        raise SessionEnded("The token is older than LRC_TOKEN_HOURS.")
    if config.auth == "password":
        current = _users(config).session_version(claims["identifier"])
        given = claims.get(VERSION_CLAIM)
        if current is None or not isinstance(given, str) or not hmac.compare_digest(current, given):
            raise SessionEnded("The user signed out, changed password or was removed.")
    return claims


def decode_token(token: str):
    """Chainlit's decode_jwt, with check_token's checks: the cl.User the token names."""
    from chainlit.user import User

    claims = check_token(token)
    _decoded_login.set((claims["identifier"], float(claims[LOGIN_CLAIM])))
    return User(identifier=claims["identifier"], display_name=claims.get("display_name"),
                metadata=claims.get("metadata") or {})


# ------------------------------------------------------------------------------------ login throttle
class LoginThrottle:
    """Failed logins counted per user name and per client address, in this process's memory (a restart
    forgets them; several server processes count separately). After ``attempts`` failures of one name
    within ``window`` seconds, or ``attempts * address_factor`` from one address (several users behind
    one address, a reverse proxy say, must not lock each other out), the next try must wait ``backoff``
    seconds after the last failure, doubling with each further failure up to ``cap``: the real user waits
    a few minutes at most. A try counts as failed from its start (parallel guesses cannot slip through
    while scrypt runs) until it succeeds, which clears the name's and the address's counts.
    """

    def __init__(self, attempts: int, window: float = 900.0, backoff: float = 30.0, cap: float = 300.0,
                 address_factor: int = 4, max_keys: int = 10_000):
        self.attempts, self.window, self.backoff, self.cap = max(1, attempts), window, backoff, cap
        self.address_factor, self.max_keys = address_factor, max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, name: str, address: str) -> list[tuple[tuple[str, str], int]]:
        return [(("user", name[:128].casefold()), self.attempts),
                (("addr", address), self.attempts * self.address_factor)]

    def _recent(self, key, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def _wait(self, times: deque[float], limit: int, now: float) -> float:
        if len(times) < limit:
            return 0.0
        pause = min(self.cap, self.backoff * 2 ** (len(times) - limit))
        return max(0.0, times[-1] + pause - now)

    def begin(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds to wait before this try may run (0: it runs, and counts as failed until ``succeeded``)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            keys = self._keys(name, address)
            wait = max(self._wait(self._recent(key, now), limit, now) for key, limit in keys)
            if wait > 0:
                return wait
            if len(self._failures) + len(keys) > self.max_keys:
                self._forget_old(now, room=len(keys))
            for key, _ in keys:
                self._failures.setdefault(key, self._recent(key, now)).append(now)
            return 0.0

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            for key, _ in self._keys(name, address):
                self._failures.pop(key, None)

    def _forget_old(self, now: float, room: int) -> None:
        for key in [k for k, times in self._failures.items() if not times or now - times[-1] > self.window]:
            del self._failures[key]
        while self._failures and len(self._failures) + room > self.max_keys:  # still full: drop the oldest
            del self._failures[next(iter(self._failures))]


_throttle: LoginThrottle | None = None


def throttle() -> LoginThrottle:
    global _throttle
    if _throttle is None or _throttle.attempts != max(1, settings().login_attempts):
        _throttle = LoginThrottle(settings().login_attempts)
    return _throttle


# ------------------------------------------------------------------------------------ routes
def _routes():
    from chainlit import server as cl_server
    from chainlit.auth import reuseable_oauth

    router = APIRouter()

    @router.post("/login")
    async def login(request: Request, response: Response, form_data: OAuth2PasswordRequestForm = Depends()):
        """Chainlit's login, throttled (LoginThrottle)."""
        name, address = form_data.username, request.client.host if request.client else "?"
        wait = throttle().begin(name, address)
        if wait > 0:
            raise HTTPException(status_code=429, detail="Too many failed logins: try again later.",
                                headers={"Retry-After": str(math.ceil(wait))})
        answer = await cl_server.login(request, response, form_data)  # raises 401 on a wrong password
        throttle().succeeded(name, address)
        return answer

    @router.post("/logout")
    async def logout(request: Request, response: Response):
        """Chainlit's logout, after ending every session of the token's user (a new session version)."""
        token = await reuseable_oauth(request)
        if token and settings().auth == "password":
            try:
                name = check_token(token)["identifier"]
            except pyjwt.InvalidTokenError:
                name = None  # an ended or forged token: nothing to end
            if name:
                await asyncio.to_thread(_users().end_sessions, name)
        return await cl_server.logout(request, response)

    return router


def install(app) -> None:
    """Hook Chainlit's token making and reading (see the module's docstring) and put the /login and
    /logout routes in front of its own."""
    import chainlit.auth
    import chainlit.auth.jwt
    import chainlit.server
    from chainlit.config import config

    from rag.api import prepend

    for module in (chainlit.auth, chainlit.server):
        module.decode_jwt = decode_token
        module.create_jwt = make_token
    config.project.user_session_timeout = int(_lifetime())  # the cookie's max-age
    prepend(app, _routes())
