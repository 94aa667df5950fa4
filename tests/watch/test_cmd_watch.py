"""`rag watch DIR` as a real process: the start's sync, a new file picked up (read back from the library
on disk by this process), Ctrl-C (SIGINT) ends it cleanly."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

from rag.config import REPO_ROOT, offline_env
from rag.store import Store

from .conftest import wait_for, write


def holds(index_dir, path, word: str) -> bool:
    """The library on disk has ``path`` with a passage holding ``word`` (read without any model)."""
    store = Store(index_dir)
    try:
        chunks = store.chunks(store.chunk_ids([str(path)]))
        return any(word in c.text for c in chunks.values())
    finally:
        store.close()


def test_rag_watch_picks_up_a_new_file(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "index"
    first = write(docs / "first.md", "candlewick")
    env = offline_env(dict(os.environ, LRC_DATA_DIR=str(tmp_path / "data")))
    # Ctrl-C as in a terminal: a suite started in the background has SIGINT ignored, and children inherit that
    proc = subprocess.Popen([sys.executable, "-m", "rag", "watch", str(docs), "--index-dir", str(index)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []

    def said(start: str, end: str = "") -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(line.startswith(start) and line.endswith(end) for line in seen)

    try:
        wait_for(lambda: said("watching"), 120, f"`rag watch` watching (said: {seen})")
        assert said("added", str(first)) and said("synced")
        new = write(docs / "new.md", "driftwood")
        wait_for(lambda: said("added", str(new)), 30, f"the new file added (said: {seen})")
        assert holds(index, new, "driftwood") and holds(index, first, "candlewick")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0 and said("stopped"), (code, seen)


def test_rag_watch_refuses_a_file(tmp_path):
    f = write(tmp_path / "a.md", "x")
    run = subprocess.run([sys.executable, "-m", "rag", "watch", str(f), "--index-dir", str(tmp_path / "index")],
                         cwd=REPO_ROOT, env=offline_env(dict(os.environ)), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "not a folder" in run.stderr
