"""The API tests' server: `python -m rag serve` in a subprocess on a free 127.0.0.1 port, over a
library indexed here from one small Markdown file with a made-up fact, with the real in-process engine
(SmolLM2-135M, the tiny random build) and a Foundry Local URL where nothing listens. One server for
the whole tests/api run (tests/api/conftest.py); it requires an API key (the tests' clients send it).
``start`` also serves other set-ups (more files, more environment: test_api_users.py's LRC_AUTH=password)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rag.config import REPO_ROOT, offline_env

KEY = "test-key-3f9a"
MAX_NEW_TOKENS = 32
FACT = """# The Quillfeather lantern

The Quillfeather lantern must be refilled with violet oil every 17 days. Its wick is woven from
heron feathers, and the lantern hums softly when the oil runs low.
"""
QUESTION = "How often must the Quillfeather lantern be refilled?"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT/v1
    key: str
    log: Path
    proc: subprocess.Popen

    def client(self, key: str | None = None, **kw):
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=self.key if key is None else key, max_retries=0,
                      timeout=kw.pop("timeout", 120), **kw)

    def async_client(self, **kw):
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.url, api_key=self.key, max_retries=0, timeout=120, **kw)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def start(root: Path, key: str = KEY, env_extra: dict | None = None, index: list[Path] | None = None) -> Server:
    """Index the made-up fact (and the files in ``index``) under ``root`` (the data folder is
    ``root / "data"``) and start the server with ``env_extra`` added to its environment; returns once it
    answers a request made with ``key``."""
    from rag.library import Library

    docs, data = root / "docs", root / "data"
    docs.mkdir()
    (docs / "quillfeather.md").write_text(FACT)
    report = Library(data / "index").ingest([docs / "quillfeather.md", *(index or [])])
    assert report.chunks_added >= 1 + len(index or []) and not report.failed, report

    port = free_port()
    env = offline_env({k: v for k, v in os.environ.items() if k != "LRC_API_KEY"})
    env.update({"LRC_DATA_DIR": str(data), "LRC_ENGINE": "onnx", "LRC_MODEL": "smollm2",
                "LRC_MAX_NEW_TOKENS": str(MAX_NEW_TOKENS), "LRC_API_KEY": KEY,
                "FOUNDRY_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "PYTHONUNBUFFERED": "1"})
    env.update(env_extra or {})
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port)], cwd=REPO_ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/v1", key, log, proc)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the API server exited ({proc.returncode}):\n{server.output()}", pytrace=False)
        try:
            if httpx.get(f"{server.url}/models", headers=server.headers, timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the API server did not start within 180 s:\n{server.output()}", pytrace=False)
        time.sleep(0.3)
