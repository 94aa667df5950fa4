"""End-to-end fixtures: a real `chainlit run app.py` server and Debian chromium driven by Playwright.

The server runs in its own working folder (symlinks to app.py, chainlit.md, public/ and a copy of
.chainlit/) so its `.files/` never collides with another server, with LRC_DATA_DIR in a temp folder:
its first chat indexes docs_corpus/ exactly like a fresh install. Foundry Local is pointed at a
fixed free port; the Foundry test starts the real service (tests/foundry's Launcher) there itself.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag.config import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = settings().datasets_dir.parent  # ../shared beside the repo, or LRC_DATASETS/..
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
START_TIMEOUT = 180.0

sys.path.insert(0, str(REPO_ROOT / "tests" / "foundry"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chainlit_server  # noqa: E402
import browser_launch  # noqa: E402  (tests/: the browser every browser test drives)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    workdir: Path
    data_dir: Path
    foundry_port: int
    proc: subprocess.Popen
    log: Path
    timings: dict = field(default_factory=dict)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        chainlit_server.wait_http(url, proc, timeout)
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()[-4000:]}")


def launch(root: Path, workdir: Path | None = None, **extra: str) -> Server:
    """Start `chainlit run app.py` with its data folder under ``root`` (a fresh one: the first chat
    indexes docs_corpus/ like a fresh install); ``workdir`` reuses a server's folder (a restart)."""
    if not chainlit_server.CHAINLIT.exists():
        pytest.fail(f"{chainlit_server.CHAINLIT} is missing: run `make setup`.")
    if workdir is None:
        workdir = chainlit_server.prepare_workdir(root / "app")
    data_dir = root / "data"
    port, foundry_port = free_port(), free_port()
    env = chainlit_server.base_env(data_dir, **{  # ``extra`` may override these
        "LRC_ENGINE": "onnx", "LRC_TOP_K": "3", "LRC_MAX_NEW_TOKENS": "96", "LRC_RETRIEVAL_MODE": "hybrid",
        "FOUNDRY_BASE_URL": f"http://127.0.0.1:{foundry_port}/catalogs/local/v1", "PYTHONUNBUFFERED": "1", **extra})
    for key in ("LRC_MODEL", "FOUNDRY_MODEL", "LRC_MODELS", "LRC_AUTH", "LRC_HISTORY"):
        if key not in extra:
            env.pop(key, None)
    log = root / f"chainlit-{port}.log"
    t0 = time.monotonic()
    proc = chainlit_server.spawn(workdir, port, env, log)
    url = f"http://127.0.0.1:{port}"
    srv = Server(url, workdir, data_dir, foundry_port, proc, log)
    try:
        _wait_http(url + "/", proc, log, START_TIMEOUT)
    except BaseException:
        chainlit_server.stop(proc)
        raise
    srv.timings["start_to_http_200_s"] = round(time.monotonic() - t0, 2)
    srv.timings["t0"] = t0
    return srv


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("e2e-server")
    srv = launch(root)
    try:
        yield srv
    finally:
        chainlit_server.stop(srv.proc)
        timings = {k: v for k, v in srv.timings.items() if k != "t0"}
        (root / "timings.json").write_text(json.dumps(timings, indent=2))
        print(f"\n[e2e] server timings: {timings}  (log: {srv.log})")


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module: while Playwright's sync API runs, its event loop is this thread's running
    loop, and a later module's asyncio test (or another sync_playwright()) on the same worker would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = browser_launch.launch(pw)
        yield b
        b.close()


@pytest.fixture
def new_chat(server, browser):
    """Open a fresh browser context (its own chat session) on the app; returns the page."""
    contexts = []

    def open_chat(width: int = 1280, height: int = 900, requests: list[str] | None = None,
                  frames: list[str] | None = None):
        """``requests``, when given, collects the URL of every request the page makes; ``frames`` every
        WebSocket frame it receives (Socket.IO's text)."""
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        if requests is not None:
            ctx.on("request", lambda r: requests.append(r.url))
        page = ctx.new_page()
        if frames is not None:
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f if isinstance(f, str) else "")))
        page.set_default_timeout(60_000)
        page.goto(server.url + "/")
        page.wait_for_selector("#chat-input", timeout=120_000)
        return page

    yield open_chat
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
