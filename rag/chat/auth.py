"""Who may use the chat. Default (LRC_AUTH=none): one local user and no login step — Chainlit's header
login answers every browser with the user "local", which gives that user a chat history — and the
server may only listen on this machine. LRC_AUTH=password: a login page; users and their hashed
passwords are managed with `python -m rag users` (rag.users). Either way the login tokens Chainlit signs
are checked on every request and socket connect, and end at logout, a password change, a user's removal,
a change of LRC_AUTH or after LRC_TOKEN_HOURS (rag.chat.sessions, which also slows password guessing)."""
from __future__ import annotations

import os
import secrets

import chainlit as cl

from rag.chat.identity import LOCAL_USER
from rag.config import settings

SECRET_FILE = "chainlit-auth-secret"


class StartRefused(SystemExit):
    """The app will not start as configured; the message says why and what to do."""


def check_host(host: str) -> None:
    """Refuse to serve other machines without a login: everyone who reaches the port would see
    every chat and document."""
    from rag.cmd.serve import is_loopback  # the API server's rule: 127.0.0.0/8, ::1, localhost

    if settings().auth == "none" and not is_loopback(host):
        raise StartRefused(
            f"Local RAG Chat will not listen on {host!r} without a login: anyone who can reach this port "
            f"would read every chat and document. Either keep the default host (127.0.0.1), or set "
            f"LRC_AUTH=password and add users with `python -m rag users add NAME`.")


def ensure_secret() -> None:
    """Chainlit signs its login tokens with CHAINLIT_AUTH_SECRET: when it is not set, use one kept in the
    data folder (made once, readable by this user only), so logins survive a restart."""
    if os.environ.get("CHAINLIT_AUTH_SECRET"):
        return
    path = settings().data_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    os.environ["CHAINLIT_AUTH_SECRET"] = path.read_text().strip()


def install(host: str) -> None:
    """Check the host, then register the login Chainlit uses (none when there is no history and no
    users: then there is nothing to keep apart) and the checks on its tokens (rag.chat.sessions)."""
    check_host(host)
    if settings().auth == "password":
        ensure_secret()
        cl.password_auth_callback(_password_login)
        _name_not_email()
    elif settings().history:
        ensure_secret()
        cl.header_auth_callback(_local_login)
    else:
        return
    import chainlit.server

    from rag.chat import sessions

    sessions.install(chainlit.server.app)


async def _local_login(headers) -> cl.User:
    return cl.User(identifier=LOCAL_USER, metadata={"provider": "local"})


async def _password_login(username: str, password: str) -> cl.User | None:
    import asyncio

    from rag.users import Users

    ok = await asyncio.to_thread(Users().verify, username, password)  # scrypt takes ~50 ms: off the loop
    return cl.User(identifier=username, metadata={"provider": "password"}) if ok else None


def _name_not_email() -> None:
    """Chainlit's login form asks for an "Email address": here users sign in with their user name."""
    from chainlit.config import config

    load = config.load_translation

    def load_translation(language: str):
        translation = load(language)
        field = translation.get("auth", {}).get("login", {}).get("form", {}).get("email")
        if isinstance(field, dict) and language.startswith("en"):
            field.update(label="User name", placeholder="", required="the user name is required")
        return translation

    object.__setattr__(config, "load_translation", load_translation)  # a pydantic model: no plain setattr
