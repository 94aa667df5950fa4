"""The users of LRC_AUTH=password (rag.users): scrypt hashes in the stated format, verification (also
for unknown users, in comparable time), API keys stored only as hashes, validation, session versions
(changed by logout and passwd, gone with the user, added to older databases), several processes
writing at once; and `python -m rag users ...` run as a real command against a temporary data folder."""
from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.config import REPO_ROOT, offline_env
from rag.users import (MIN_PASSWORD, NoSuchUser, UserExists, UserInfo, Users, check_password, hash_password)

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path) -> Users:
    return Users(tmp_path / "users.sqlite3")


def _db_bytes(path: Path) -> bytes:
    """The database as it is on disk: the file and its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


# ------------------------------------------------------------------------------------ hashing
def test_password_hash_format():
    stored = hash_password(PASSWORD)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    salt_b, digest_b = base64.b64decode(salt), base64.b64decode(digest)
    assert len(salt_b) == 16
    assert digest_b == hashlib.scrypt(PASSWORD.encode(), salt=salt_b, n=2 ** 14, r=8, p=1, dklen=len(digest_b))
    assert hash_password(PASSWORD) != stored  # a fresh salt each time
    assert check_password(PASSWORD, stored) and not check_password(PASSWORD + "x", stored)
    assert not check_password(PASSWORD, "scrypt$16384$8$1$notbase64!$xx") and not check_password(PASSWORD, "")


def test_the_store_keeps_hashes_not_passwords(users):
    key = users.add("alice", PASSWORD)
    with sqlite3.connect(users.path) as conn:
        stored, key_hash = conn.execute("SELECT password, api_key_sha256 FROM users WHERE name='alice'").fetchone()
    assert stored.startswith("scrypt$16384$8$1$") and check_password(PASSWORD, stored)
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    raw = _db_bytes(users.path)
    assert b"alice" in raw  # the check can see what was written
    assert PASSWORD.encode() not in raw and key.encode() not in raw and key[4:].encode() not in raw


# ------------------------------------------------------------------------------------ the store
def test_verify(users):
    users.add("alice", PASSWORD)
    assert users.verify("alice", PASSWORD)
    assert not users.verify("alice", PASSWORD + "!")
    assert not users.verify("alice", "")
    assert not users.verify("Alice", PASSWORD)  # names are exact
    assert not users.verify("nobody", PASSWORD)


def test_an_unknown_user_takes_as_long_as_a_wrong_password(users):
    users.add("alice", PASSWORD)
    users.verify("nobody", "warm up")  # the first unknown user makes the stand-in hash

    def timed(name: str) -> float:
        """The CPU time of this thread (scrypt runs in it): the work a login does. Wall time on a machine
        that the suite keeps busy also counts the time the thread waited for a core (a run in CI measured
        0.038 s against 0.083 s for the same work); work skipped for an unknown user shows in both."""
        t = time.thread_time()
        users.verify(name, "wrong password")
        return time.thread_time() - t

    # alternated, so that a busy machine slows both alike; the fastest of each
    pairs = [(timed("alice"), timed("nobody")) for _ in range(10)]
    known, unknown = min(k for k, _ in pairs), min(u for _, u in pairs)
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_set_password_and_remove(users):
    users.add("alice", PASSWORD)
    users.set_password("alice", "a new password")
    assert users.verify("alice", "a new password") and not users.verify("alice", PASSWORD)
    with pytest.raises(NoSuchUser, match="no user named 'bob'"):
        users.set_password("bob", "a new password")
    assert users.remove("alice") is True
    assert users.remove("alice") is False
    assert not users.verify("alice", "a new password") and users.list() == []


# ------------------------------------------------------------------------------------ session versions
def test_session_versions(users):
    users.add("alice", PASSWORD)
    users.add("bob", PASSWORD)
    first, bobs = users.session_version("alice"), users.session_version("bob")
    assert isinstance(first, str) and len(first) >= 32 and first != bobs
    assert users.session_version("alice") == first  # stable while nothing happens
    assert users.end_sessions("alice") is True
    after_logout = users.session_version("alice")
    assert after_logout not in (first, None)
    users.set_password("alice", "a new password")
    assert users.session_version("alice") not in (after_logout, first, None), "a new password ends sessions"
    assert users.session_version("bob") == bobs, "other users' sessions go on"
    last = users.session_version("alice")
    users.remove("alice")
    assert users.session_version("alice") is None
    users.add("alice", PASSWORD)
    assert users.session_version("alice") not in (last, after_logout, first, None), \
        "a name added again does not revive the old user's tokens"
    assert users.end_sessions("nobody") is False and users.session_version("nobody") is None
    assert users.session_version(None) is None


def test_a_session_version_read_sees_another_writers_change(users):
    """The reads go through a connection kept open: each must still see what another process committed."""
    users.add("alice", PASSWORD)
    seen = users.session_version("alice")
    Users(users.path).end_sessions("alice")  # another instance, another connection
    assert users.session_version("alice") not in (seen, None)
    code = f"from rag.users import Users; Users({str(users.path)!r}).end_sessions('alice')"
    before = users.session_version("alice")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0
    assert users.session_version("alice") not in (before, None)


def test_an_older_database_gets_session_versions(tmp_path):
    path = tmp_path / "users.sqlite3"
    with sqlite3.connect(path) as conn:  # the schema before session versions
        conn.execute("CREATE TABLE users (name TEXT PRIMARY KEY, password TEXT NOT NULL, "
                     "api_key_sha256 TEXT UNIQUE, created_at REAL NOT NULL)")
        conn.execute("INSERT INTO users VALUES ('alice', ?, NULL, 1.0), ('bob', ?, NULL, 2.0)",
                     (hash_password(PASSWORD), hash_password(PASSWORD)))
    conn.close()
    users = Users(path)
    versions = {name: users.session_version(name) for name in ("alice", "bob")}
    assert all(isinstance(v, str) and len(v) >= 32 for v in versions.values()) and len(set(versions.values())) == 2
    assert users.verify("alice", PASSWORD) and [u.name for u in users.list()] == ["alice", "bob"]
    assert Users(path).session_version("alice") == versions["alice"], "opened again: migrated once"


def test_list(users):
    before = time.time()
    users.add("bob", PASSWORD)
    users.add("alice", PASSWORD)
    listed = users.list()
    assert [u.name for u in listed] == ["alice", "bob"]
    assert all(isinstance(u, UserInfo) and u.has_api_key and before - 1 <= u.created_at <= time.time() + 1
               for u in listed)


def test_api_keys(users):
    first = users.add("alice", PASSWORD)
    users.add("bob", PASSWORD)
    assert first.startswith("lrc-") and len(first) > 40
    assert users.user_for_api_key(first) == "alice"
    second = users.new_api_key("alice")
    assert second != first and second.startswith("lrc-")
    assert users.user_for_api_key(second) == "alice" and users.user_for_api_key(first) is None
    assert users.user_for_api_key("") is None and users.user_for_api_key(None) is None
    assert users.user_for_api_key("lrc-made-up") is None
    with pytest.raises(NoSuchUser):
        users.new_api_key("carol")
    users.remove("alice")
    assert users.user_for_api_key(second) is None


@pytest.mark.parametrize("name", ["", "a b", "../x", ".hidden", "-x", "x/y", "é", "a" * 65, "name\n"])
def test_bad_names_are_refused(users, name):
    with pytest.raises(ValueError, match="not a valid user name"):
        users.add(name, PASSWORD)
    assert users.list() == []


def test_good_names(users):
    for name in ("a", "Alice.Smith", "bob_2", "x-y", "a" * 64):
        users.add(name, PASSWORD)
    assert len(users.list()) == 5


@pytest.mark.parametrize("password, words", [("short", f"at least {MIN_PASSWORD}"), ("1234567", "too short"),
                                             ("x" * 1025, "too long"), ("two\nlines", "line breaks")])
def test_bad_passwords_are_refused(users, password, words):
    with pytest.raises(ValueError, match=words):
        users.add("alice", password)
    users.add("alice", PASSWORD)
    with pytest.raises(ValueError, match=words):
        users.set_password("alice", password)
    assert users.verify("alice", PASSWORD)


def test_a_name_is_taken_once_whatever_its_case(users):
    users.add("alice", PASSWORD)
    with pytest.raises(UserExists, match="'alice' already exists"):
        users.add("alice", "another password")
    with pytest.raises(UserExists, match="differ only in case"):
        users.add("ALICE", "another password")
    assert users.verify("alice", PASSWORD) and [u.name for u in users.list()] == ["alice"]


def test_default_path_is_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    assert Users().path == tmp_path / "data" / "users.sqlite3"
    assert (tmp_path / "data" / "users.sqlite3").is_file()
    assert (tmp_path / "data" / "users.sqlite3").stat().st_mode & 0o077 == 0  # its owner's only


def test_several_processes_add_users_at_once(tmp_path):
    db = tmp_path / "users.sqlite3"
    code = textwrap.dedent("""
        import sys
        from rag.users import Users
        users = Users(sys.argv[1])
        for i in range(4):
            users.add(f"{sys.argv[2]}{i}", "password {i}".format(i=i) * 2)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), f"p{n}-"], cwd=REPO_ROOT,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    users = Users(db)
    assert sorted(u.name for u in users.list()) == sorted(f"p{n}-{i}" for n in range(4) for i in range(4))
    assert users.verify("p3-2", "password 2password 2")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ------------------------------------------------------------------------------------ the command
def rag_users(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = offline_env({k: v for k, v in os.environ.items() if not k.startswith("LRC_")})
    env["LRC_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-m", "rag", "users", *args], cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


def _key(stdout: str) -> str:
    keys = [w for w in stdout.split() if w.startswith("lrc-")]
    assert len(keys) == 1, stdout
    return keys[0]


def test_cli_add_list_passwd_key(tmp_path):
    data = tmp_path / "data"
    res = rag_users(data, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    key = _key(res.stdout)
    assert "API key" in res.stdout and "shown only this once" in res.stdout and "Bearer" in res.stdout
    assert "LRC_AUTH" in res.stderr  # the note: users take effect with LRC_AUTH=password
    users = Users(data / "users.sqlite3")
    assert users.verify("alice", PASSWORD) and users.user_for_api_key(key) == "alice"

    # not a terminal: the password is read from standard input without the flag too
    res = rag_users(data, "add", "bob", stdin="bobs password\n")
    assert res.returncode == 0, res.stderr
    assert users.verify("bob", "bobs password")

    res = rag_users(data, "list")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "API", "KEY"]
    assert [ln.split()[0] for ln in lines[1:]] == ["alice", "bob"] and all(ln.endswith("yes") for ln in lines[1:])

    version = users.session_version("alice")
    res = rag_users(data, "passwd", "alice", "--password-stdin", stdin="another password\n")
    assert res.returncode == 0, res.stderr
    assert users.verify("alice", "another password") and not users.verify("alice", PASSWORD)
    assert "signed out" in res.stdout and users.session_version("alice") not in (version, None)

    version = users.session_version("alice")
    res = rag_users(data, "logout", "alice")
    assert res.returncode == 0, res.stderr
    assert "Signed alice out" in res.stdout and users.session_version("alice") not in (version, None)
    assert users.verify("alice", "another password") and users.user_for_api_key(key) == "alice"

    res = rag_users(data, "key", "alice")
    assert res.returncode == 0, res.stderr
    new = _key(res.stdout)
    assert users.user_for_api_key(new) == "alice" and users.user_for_api_key(key) is None
    assert "another password" not in _db_bytes(data / "users.sqlite3").decode("latin-1")


@pytest.mark.parametrize("args, stdin, words", [
    (["add", "alice", "--password-stdin"], "short\n", "too short"),
    (["add", "../evil", "--password-stdin"], PASSWORD + "\n", "not a valid user name"),
    (["add", "alice", "--password-stdin"], "", "No password on standard input"),
    (["passwd", "nobody", "--password-stdin"], PASSWORD + "\n", "no user named 'nobody'"),
    (["key", "nobody"], "", "no user named 'nobody'"),
    (["remove", "nobody"], "", "no user named 'nobody'"),
    (["logout", "nobody"], "", "no user named 'nobody'"),
])
def test_cli_errors_are_one_readable_line(tmp_path, args, stdin, words):
    res = rag_users(tmp_path / "data", *args, stdin=stdin)
    assert res.returncode == 1, res.stdout + res.stderr
    assert words in res.stderr and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert "lrc-" not in res.stdout


def test_cli_add_twice_is_an_error(tmp_path):
    data = tmp_path / "data"
    assert rag_users(data, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    res = rag_users(data, "add", "alice", "--password-stdin", stdin="other password\n")
    assert res.returncode == 1 and "already exists" in res.stderr, res.stderr
    assert Users(data / "users.sqlite3").verify("alice", PASSWORD)


def test_cli_list_without_users(tmp_path):
    res = rag_users(tmp_path / "data", "list")
    assert res.returncode == 0 and "No users yet" in res.stdout, res.stdout + res.stderr


def test_cli_remove_keeps_the_uploads(tmp_path):
    data = tmp_path / "data"
    assert rag_users(data, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    folder = data / "uploads" / "users" / "alice"
    folder.mkdir(parents=True)
    (folder / "note.md").write_text("alice's note")
    res = rag_users(data, "remove", "alice")
    assert res.returncode == 0, res.stderr
    assert "Removed user alice" in res.stdout and str(folder) in res.stdout and "--delete-files" in res.stdout
    assert (folder / "note.md").read_text() == "alice's note"
    assert Users(data / "users.sqlite3").list() == []
    res = rag_users(data, "remove", "alice")
    assert res.returncode == 1 and "no user named 'alice'" in res.stderr


@pytest.mark.slow
def test_cli_remove_delete_files_takes_them_out_of_the_library(tmp_path):
    from rag.library import Library

    data = tmp_path / "data"
    assert rag_users(data, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    folder = data / "uploads" / "users" / "alice" / "0a1b"
    folder.mkdir(parents=True)
    (folder / "gears.md").write_text("# Gears\n\nThe Brindlewick clock is wound every 23 days.\n")
    shared = tmp_path / "shared.md"
    shared.write_text("# Shared\n\nThe Quillfeather lantern is refilled every 17 days.\n")
    report = Library(data / "index").ingest([folder, shared])
    assert report.chunks_added == 2 and not report.failed, report

    res = rag_users(data, "remove", "alice", "--delete-files")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Deleted alice's uploads" in res.stdout and "1 passages" in res.stdout
    assert not (data / "uploads" / "users" / "alice").exists()
    assert [Path(f.path).name for f in Library(data / "index").files()] == ["shared.md"]
    assert Users(data / "users.sqlite3").list() == []


def _on_a_terminal(data: Path, args: list[str], answers: list[bytes]) -> tuple[bytes, int]:
    """`python -m rag users ...` on a real pseudo-terminal, answering its prompts in order."""
    import pty

    env = offline_env({k: v for k, v in os.environ.items() if not k.startswith("LRC_")})
    env["LRC_DATA_DIR"] = str(data)
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.chdir(REPO_ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "rag", "users", *args], env)
    out = b""
    try:
        for answer in answers:
            while not out.rstrip().endswith(b":"):
                out += os.read(fd, 1024)
            os.write(fd, answer + b"\n")
            out += b"|"  # the next prompt is looked for after this answer
        while chunk := os.read(fd, 1024):
            out += chunk
    except OSError:  # the command ended (the terminal closed)
        pass
    _, status = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(status)


def test_cli_asks_for_the_password_twice_on_a_terminal(tmp_path):
    data = tmp_path / "data"
    out, code = _on_a_terminal(data, ["add", "alice"], [PASSWORD.encode(), PASSWORD.encode()])
    assert code == 0, out
    assert b"Password:" in out and b"Password again:" in out and PASSWORD.encode() not in out  # not echoed
    assert Users(data / "users.sqlite3").verify("alice", PASSWORD)
    out, code = _on_a_terminal(data, ["passwd", "alice"], [b"new password 1", b"new password 2"])
    assert code == 1 and b"differ" in out, out
    assert Users(data / "users.sqlite3").verify("alice", PASSWORD)
