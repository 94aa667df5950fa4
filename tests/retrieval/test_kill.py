"""A process SIGKILLed in the middle of indexing leaves the last good index: it loads, answers,
reports the files it left out; a re-run completes it."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from rag.library import Library

from .conftest import REPO_ROOT

TOPICS = ["volcanoes", "glaciers", "bees", "comets", "bridges", "violins", "lighthouses", "mushrooms", "tides",
          "deserts", "orchids", "satellites"]


def make_docs(folder):
    folder.mkdir()
    for i, topic in enumerate(TOPICS):
        paras = [f"Paragraph {j} of the note about {topic}. " + " ".join(
            f"Fact {k} about {topic} is recorded here in plain words for the test." for k in range(6))
            for j in range(5)]
        (folder / f"{i:02d}-{topic}.md").write_text(f"# About {topic}\n\n" + "\n\n".join(paras), encoding="utf-8")


def committed_files(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_index_then_rerun_completes(tmp_path, embedder):
    docs = tmp_path / "docs"
    make_docs(docs)
    index = tmp_path / "index"
    env = dict(os.environ, LRC_INGEST_BATCH="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rag", "index", str(docs), "--index-dir", str(index), "--quiet"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = index / "library.sqlite3"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None and committed_files(db) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, f"indexing ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
        assert committed_files(db) >= 2, "no file was committed within 180 s"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    lib = Library(index)
    st = lib.stats()
    assert 2 <= st.files < len(TOPICS), st
    assert len(st.missing) == len(TOPICS) - st.files
    done = {e.name for e in lib.files()}
    assert not done & {os.path.basename(p) for p in st.missing}
    first = sorted(done)[0]
    topic = first.split("-", 1)[1].removesuffix(".md")
    hit = lib.search(f"facts about {topic}", k=1)[0]
    assert hit.chunk.name == first

    report = lib.ingest([docs])
    assert len(report.added) == len(st.missing) and len(report.unchanged) == st.files and not report.failed
    after = lib.stats()
    assert after.files == len(TOPICS) and after.missing == []
    assert lib.search("facts about satellites", k=1)[0].chunk.name == "11-satellites.md"
