"""Start, wait for and stop a real `chainlit run app.py` in a working folder of its own
(two servers sharing one folder break each other's `.files/` uploads). Used by the browser tests
and by bench/bench_chat_startup.py."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAINLIT = REPO_ROOT / ".venv" / "bin" / "chainlit"


def prepare_workdir(workdir: Path) -> Path:
    """app.py, chainlit.md and public/ linked from the repo; .chainlit/ copied (Chainlit writes into it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("app.py", "chainlit.md", "public"):
        (workdir / name).symlink_to(REPO_ROOT / name)
    (workdir / ".chainlit").mkdir()
    shutil.copy(REPO_ROOT / ".chainlit" / "config.toml", workdir / ".chainlit" / "config.toml")
    return workdir


def base_env(data_dir: Path, **extra: str) -> dict:
    return dict(os.environ, LRC_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO_ROOT), **extra)


def spawn(workdir: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(CHAINLIT), "run", "app.py", "--headless", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Until `url` answers 200; RuntimeError if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chainlit exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"chainlit did not answer HTTP 200 within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then the whole process group if it does not go within 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
