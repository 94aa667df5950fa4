"""The users of ``LRC_AUTH=password``: names, password hashes and API keys in one small SQLite database
(``data_dir/users.sqlite3``, WAL, one table created here; several processes may use it at once).

Passwords are stored only as scrypt hashes, ``scrypt$n$r$p$salt_b64$hash_b64`` (stdlib ``hashlib.scrypt``,
a random 16-byte salt per password, the parameters kept with the hash so they can change later).
``verify`` compares in constant time, and an unknown user costs the same scrypt run as a known one.
An API key (for the OpenAI-compatible API) is ``lrc-`` + random text, shown once and stored only as its
sha256: one key per user, a new one replaces the old.

Names follow ``USER_NAME`` (also a safe folder name: a user's uploads live under ``uploads/users/<name>``,
rag.owners); two names that differ only in case are not allowed (they would share a folder on a
case-insensitive file system). Nothing here logs or stores a password or a key in clear.

Each user has a session version: the chat's login tokens carry it and are refused once it changes
(rag.chat.sessions). ``end_sessions`` (logout) and ``set_password`` change it; ``remove`` deletes it with
the user. It is a random value, not a counter, so that a user removed and added again under the same
name does not revive the old user's tokens. Databases made before it existed get one per user when
opened.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.config import settings
from rag.dbfile import use_wal

__all__ = ["USER_NAME", "MIN_PASSWORD", "Users", "UserInfo", "UserError", "NoSuchUser", "UserExists",
           "hash_password", "check_password", "check_name", "check_new_password"]

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # also a safe folder name (\Z: no "\n" after it)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
DB_NAME = "users.sqlite3"
KEY_PREFIX = "lrc-"

# scrypt: n=2**14, r=8, p=1 needs 16 MiB and about 50 ms a hash
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
_MAX_MEM = 64 * 1024 * 1024


class UserError(Exception):
    """A user operation that cannot be done; the message is a sentence for the person who asked."""


class NoSuchUser(UserError):
    def __init__(self, name: str):
        super().__init__(f"There is no user named {name!r}.")
        self.name = name


class UserExists(UserError):
    def __init__(self, name: str, existing: str | None = None):
        same = f" (as {existing!r}: names may not differ only in case)" if existing and existing != name else ""
        super().__init__(f"A user named {name!r} already exists{same}.")
        self.name = name


@dataclass(frozen=True)
class UserInfo:
    name: str
    created_at: float  # seconds since the epoch
    has_api_key: bool


# ------------------------------------------------------------------------------------ validation
def check_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid user name: use 1 to 64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit.")
    return name


def check_new_password(password: str) -> str:
    if not isinstance(password, str):
        raise ValueError("The password must be text.")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"The password is too long: use at most {MAX_PASSWORD} characters.")
    if any(c in password for c in "\r\n\x00"):
        raise ValueError("The password may not contain line breaks or NUL characters.")
    return password


# ------------------------------------------------------------------------------------ hashing
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAX_MEM)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a ``hash_password`` result), compared in constant time.
    A malformed ``stored`` value matches nothing."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        salt_b, digest_b = base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
        computed = _scrypt(password, salt_b, int(n), int(r), int(p), len(digest_b))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, digest_b)


_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def _dummy() -> str:
    """A hash nobody's password matches, so that an unknown user costs one scrypt run too."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(24))
        return _dummy_hash


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _new_key() -> tuple[str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, _key_digest(key)


def _new_version() -> str:
    return secrets.token_hex(16)


# ------------------------------------------------------------------------------------ the store
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, password TEXT NOT NULL, api_key_sha256 TEXT UNIQUE, created_at REAL NOT NULL,
    session_version TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS users_name_nocase ON users(name COLLATE NOCASE)
"""


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database made by an older version up to date (inside the caller's transaction): the
    session version column, and a version for every user who has none (their old tokens then fail)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    if "session_version" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN session_version TEXT")
    for (name,) in conn.execute("SELECT name FROM users WHERE session_version IS NULL").fetchall():
        conn.execute("UPDATE users SET session_version = ? WHERE name = ?", (_new_version(), name))


class Users:
    """The user database. Each call opens its own short connection, so one instance may be shared
    by threads, and other processes (the CLI, a second server) may write at the same time."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path is not None else settings().data_dir / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reader = threading.local()
        if not self.path.exists():  # readable by its owner only: it holds password hashes
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connect() as conn:
            use_wal(conn)
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            _migrate(conn)
            conn.execute("COMMIT")

    # ---------------------------------------------------------------- connections
    def _connect(self) -> "_Conn":
        return _Conn(self.path)

    def _write(self, sql: str, args: tuple) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        with self._connect() as conn:
            return conn.execute(sql, args).rowcount

    def _row(self, sql: str, args: tuple):
        with self._connect() as conn:
            return conn.execute(sql, args).fetchone()

    # ---------------------------------------------------------------- users
    def add(self, name: str, password: str) -> str:
        """Create a user; returns their first API key (shown once: only its hash is kept)."""
        check_name(name)
        check_new_password(password)
        key, digest = _new_key()
        hashed = hash_password(password)
        try:
            self._write("INSERT INTO users (name, password, api_key_sha256, created_at, session_version) "
                        "VALUES (?, ?, ?, ?, ?)", (name, hashed, digest, time.time(), _new_version()))
        except sqlite3.IntegrityError:
            row = self._row("SELECT name FROM users WHERE name = ? COLLATE NOCASE", (name,))
            raise UserExists(name, row[0] if row else None) from None
        return key

    def set_password(self, name: str, password: str) -> None:
        """Change ``name``'s password; it also ends their sessions (a new session version)."""
        check_new_password(password)
        if not self._write("UPDATE users SET password = ?, session_version = ? WHERE name = ?",
                           (hash_password(password), _new_version(), name)):
            raise NoSuchUser(name)

    def remove(self, name: str) -> bool:
        """Delete a user (False when there was none), and with them their session version, so their
        tokens are refused. Their uploads are not touched here."""
        return bool(self._write("DELETE FROM users WHERE name = ?", (name,)))

    # ---------------------------------------------------------------- sessions
    def session_version(self, name: str) -> str | None:
        """``name``'s current session version (what their login tokens must carry); None: no such user.
        Asked on every request the chat authenticates, on the event loop: it reads through a connection
        kept open per thread (a fresh one costs ~10x more; each SELECT still sees the latest commit)."""
        if not isinstance(name, str):
            return None
        conn = getattr(self._reader, "conn", None)
        if conn is None:
            conn = self._reader.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                                       check_same_thread=True)
        rows = conn.execute("SELECT session_version FROM users WHERE name = ?", (name,)).fetchall()  # all: ends
        return rows[0][0] if rows else None  # the read (a statement left open would pin an old snapshot)

    def end_sessions(self, name: str) -> bool:
        """Give ``name`` a new session version: every token made before stops working (False: no such user)."""
        return bool(self._write("UPDATE users SET session_version = ? WHERE name = ?", (_new_version(), name)))

    def exists(self, name: str) -> bool:
        return self._row("SELECT 1 FROM users WHERE name = ?", (name,)) is not None

    def list(self) -> list[UserInfo]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, created_at, api_key_sha256 IS NOT NULL FROM users "
                                "ORDER BY name COLLATE NOCASE").fetchall()
        return [UserInfo(r[0], float(r[1]), bool(r[2])) for r in rows]

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s. Takes about as long for an unknown user, a wrong
        password or a right one (one scrypt run each, compared in constant time)."""
        row = self._row("SELECT password FROM users WHERE name = ?", (name,)) if isinstance(name, str) else None
        if not isinstance(password, str):
            password = ""
        ok = check_password(password, row[0] if row else _dummy())
        return ok and row is not None

    # ---------------------------------------------------------------- API keys
    def new_api_key(self, name: str) -> str:
        """A fresh API key for ``name``; the old one stops working."""
        key, digest = _new_key()
        if not self._write("UPDATE users SET api_key_sha256 = ? WHERE name = ?", (digest, name)):
            raise NoSuchUser(name)
        return key

    def user_for_api_key(self, key: str | None) -> str | None:
        """The user whose API key this is, or None. (The lookup is by the key's sha256, so how long
        it takes says nothing about the key.)"""
        if not key or not isinstance(key, str):
            return None
        row = self._row("SELECT name FROM users WHERE api_key_sha256 = ?", (_key_digest(key.strip()),))
        return row[0] if row else None


class _Conn:
    """A connection for one ``with`` block: the statements run in autocommit mode (each its own
    transaction unless BEGIN is sent); closed at the end."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()
        return False
