"""The security suite's servers: a real `chainlit run app.py` started the README's way, once with no login
(the default) and once with LRC_AUTH=password and three users. Attack tests share these two per session
(tests that change a server's state for good, such as removing a user, start their own with ``launch``).
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "foundry"))
import chainlit_server  # noqa: E402

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}


@dataclass
class Target:
    """A running server under attack: its URL, data folder, working folder, log, and the users' API keys."""
    url: str
    port: int
    data_dir: Path
    workdir: Path
    proc: subprocess.Popen
    log: Path
    keys: dict

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def add_users(data_dir: Path, passwords: dict[str, str] = PASSWORDS) -> dict[str, str]:
    """Create the users with `python -m rag users add`; returns each one's API key (printed once)."""
    keys = {}
    for name, password in passwords.items():
        done = subprocess.run([sys.executable, "-m", "rag", "users", "add", name, "--password-stdin"],
                              input=password + "\n", text=True, capture_output=True, cwd=REPO_ROOT,
                              env=chainlit_server.base_env(data_dir))
        assert done.returncode == 0, done.stderr
        keys[name] = done.stdout.split("(/v1): ", 1)[1].split()[0]
    return keys


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, users: bool = False, workdir: Path | None = None, **extra: str) -> Target:
    """Start `chainlit run app.py` with its data under ``root``; ``users``: LRC_AUTH=password and the three
    users of PASSWORDS (their API keys in .keys); ``workdir``: reuse a stopped server's folder (a restart)."""
    if not chainlit_server.CHAINLIT.exists():
        pytest.fail(f"{chainlit_server.CHAINLIT} is missing: run `make setup`.")
    data_dir = root / "data"
    keys = add_users(data_dir) if users and not (data_dir / "users.sqlite3").exists() else {}
    if users:
        extra.setdefault("LRC_AUTH", "password")
    workdir = workdir or chainlit_server.prepare_workdir(root / "app")
    port = _free_port()
    env = chainlit_server.base_env(data_dir, LRC_ENGINE="onnx", LRC_TOP_K="3", LRC_MAX_NEW_TOKENS="48",
                                   LRC_ANSWER_STYLE="quote", PYTHONUNBUFFERED="1", **extra)
    for key in ("LRC_MODEL", "LRC_MODELS", "LRC_HISTORY", "LRC_ALLOWED_ORIGINS", "LRC_ALLOWED_HOSTS", "LRC_API_KEY"):
        if key not in extra:
            env.pop(key, None)
    if "LRC_AUTH" not in extra:
        env.pop("LRC_AUTH", None)
    log = root / f"chainlit-{port}.log"
    proc = chainlit_server.spawn(workdir, port, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        chainlit_server.wait_http(url + "/", proc, 180)
    except RuntimeError as exc:
        chainlit_server.stop(proc)
        pytest.fail(f"{exc}:\n{log.read_text(errors='replace')[-4000:]}")
    return Target(url, port, data_dir, workdir, proc, log, keys)


@pytest.fixture(scope="session")
def open_server(tmp_path_factory):
    """The default mode: no login (Chainlit's header login gives every local caller the user "local")."""
    target = start(tmp_path_factory.mktemp("sec-open"))
    yield target
    chainlit_server.stop(target.proc)


@pytest.fixture(scope="session")
def users_server(tmp_path_factory):
    """LRC_AUTH=password with alice, bob and carol (PASSWORDS; API keys in .keys)."""
    target = start(tmp_path_factory.mktemp("sec-users"), users=True)
    yield target
    chainlit_server.stop(target.proc)


def login(target: Target, name: str, password: str | None = None):
    """Chainlit's password login (POST /login, form fields); returns the httpx response."""
    import httpx

    return httpx.post(target.url + "/login", data={"username": name, "password": password or PASSWORDS[name]},
                      headers={"Origin": target.url}, timeout=30)
