"""LRC_WATCH on a real chat server (`chainlit run app.py`): its start-up starts the watcher in a thread,
a file written into the watched folder reaches the library (read back from disk by this process), and
the server still stops on SIGTERM (its shutdown stops the watcher)."""
from __future__ import annotations

import signal
import sys
import time

from rag.config import REPO_ROOT

from .conftest import wait_for, write
from .test_cmd_watch import holds

sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
import chainlit_server  # noqa: E402  (tests/e2e: start and stop a real chat server)


def test_the_chat_server_watches_lrc_watch(tmp_path, free_port):
    docs, other = tmp_path / "docs", tmp_path / "other"
    first = write(docs / "first.md", "mulberry")
    data = tmp_path / "data"
    env = chainlit_server.base_env(data, LRC_WATCH=f"{docs}:{other}", LRC_WARMUP="0", PYTHONUNBUFFERED="1")
    workdir = chainlit_server.prepare_workdir(tmp_path / "app")
    log = tmp_path / "chainlit.log"
    proc = chainlit_server.spawn(workdir, free_port, env, log)
    try:
        chainlit_server.wait_http(f"http://127.0.0.1:{free_port}/", proc, 120)
        index = data / "index"
        wait_for(lambda: (index / "library.sqlite3").exists() and holds(index, first, "mulberry"), 120,
                 "the watched folder synced at start-up")
        new = write(other / "later.md", "quincunx")  # the second folder did not exist at start-up
        wait_for(lambda: holds(index, new, "quincunx"), 30, "a file in a folder that appeared later indexed")
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            code = proc.wait(30)
        finally:
            chainlit_server.stop(proc)
    assert code is not None and time.monotonic() - t0 < 30, log.read_text()[-3000:]
