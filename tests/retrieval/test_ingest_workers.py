"""Loading in separate processes (rag/ingest/pool.py, rag/ingest/worker.py): the same chunks as loading in
a thread, and a loader process that dies (and is replaced) or never starts loses nothing but the file it was reading. Real
processes, real PDF pages, the real model."""
from __future__ import annotations

import subprocess
import sys
import time

from rag.ingest import pool
from rag.ingest.records import IngestStopped
from rag.library import Library

DYING_LOADER = r"""
import pickle, sys, os
inp, out = sys.stdin.buffer, sys.stdout.buffer
pickle.load(inp)                      # the config
out.write(pickle.dumps(("ready",))); out.flush()
pickle.load(inp)                      # the first job
os._exit(9)                           # dies while "reading" it
"""


def write_md(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"kettle.md": "# Kettle\n\nDescale the kettle with vinegar and water, then rinse it twice.",
                       "garden.md": "# Garden\n\nTomatoes need six hours of direct sunlight every day."}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def chunk_rows(lib: Library):
    files = sorted((e.name, e.pages) for e in lib.files())
    chunks = lib.store.chunks(list(range(1, 10_000)))
    return files, sorted((c.name, c.page, c.start, c.heading, c.text) for c in chunks.values())


def test_processes_give_the_same_chunks_as_a_thread(tmp_path, embedder, small_pdf, monkeypatch):
    docs = write_md(tmp_path / "docs")
    started = []
    real_start = pool.start_loader_process

    def counting_start():
        proc = real_start()
        started.append(proc.pid)
        return proc

    monkeypatch.setattr(pool, "start_loader_process", counting_start)
    in_procs = Library(tmp_path / "a")
    r1 = in_procs.ingest([docs, small_pdf])
    assert started, "a run with a PDF did not use loader processes"
    assert not r1.failed and len(r1.added) == 3

    monkeypatch.setenv("LRC_INGEST_WORKERS", "0")
    started.clear()
    in_thread = Library(tmp_path / "b")
    r2 = in_thread.ingest([docs, small_pdf])
    assert not started and not r2.failed
    assert r1.chunks_added == r2.chunks_added > 0
    assert chunk_rows(in_procs) == chunk_rows(in_thread)
    top = in_procs.search("Who wrote R originally?", k=1)[0]
    assert top.chunk.name == "rfaq-basics.pdf" and top.chunk.page in (1, 2)


def test_a_dying_loader_process_fails_only_its_file(tmp_path, embedder, small_pdf, monkeypatch):
    docs = write_md(tmp_path / "docs")
    monkeypatch.setenv("LRC_INGEST_WORKERS", "1")
    real_start, started = pool.start_loader_process, []

    def first_one_dies():  # the first process dies on its first file; its replacement is a real one
        proc = real_start() if started else subprocess.Popen(
            [sys.executable, "-c", DYING_LOADER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        started.append(proc)
        return proc

    monkeypatch.setattr(pool, "start_loader_process", first_one_dies)
    lib = Library(tmp_path / "index")
    report = lib.ingest([docs, small_pdf])
    assert len(report.failed) == 1, report.failed
    path, reason = report.failed[0]
    assert "loader process stopped" in reason and "exit code 9" in reason, reason
    assert len(report.added) == 2  # the others were loaded by the process that replaced it
    assert len(started) == 2 and started[1].returncode == 0  # replaced, and the replacement ended cleanly
    assert lib.stats().files == 2 and lib.stats().missing == []
    monkeypatch.undo()
    again = lib.ingest([docs, small_pdf])  # a re-run (real loader processes) completes it
    assert path in again.added or path in again.updated


def test_a_loader_process_that_never_starts_loses_nothing(tmp_path, embedder, small_pdf, monkeypatch):
    docs = write_md(tmp_path / "docs")
    monkeypatch.setattr(pool, "start_loader_process", lambda: subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    lib = Library(tmp_path / "index")
    report = lib.ingest([docs, small_pdf])
    assert not report.failed and len(report.added) == 3
    assert lib.search("descale the kettle", k=1)[0].chunk.name == "kettle.md"


def test_loaders_are_paused_while_the_model_computes(tmp_path, embedder, small_pdf, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(8):
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\n" + f"Sentence {i} about lighthouses and tides. " * 40,
                                          encoding="utf-8")
    lib = Library(tmp_path / "index", batch_chunks=1)  # embed each file as it arrives: loaders still busy
    seen: list[str] = []
    real = lib.embedder.encode

    def spying_encode(texts, batch_size=32):
        for proc in lib.ingester.loader_processes:
            state = ""
            deadline = time.monotonic() + 0.5  # SIGSTOP takes effect when the process is next scheduled
            while time.monotonic() < deadline:
                try:
                    with open(f"/proc/{proc.pid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]  # process state letter
                except OSError:
                    state = "gone"
                if state in ("T", "gone", "Z"):
                    break
                time.sleep(0.005)
            seen.append(state)
        return real(texts, batch_size)

    monkeypatch.setattr(lib.embedder, "encode", spying_encode)
    report = lib.ingest([docs, small_pdf])
    assert not report.failed and len(report.added) == 9
    live = [s for s in seen if s not in ("Z", "gone")]
    assert live, "no loader process was alive during an encode"
    assert all(s == "T" for s in live), f"loader states during encode: {seen}"
    assert lib.ingester.loader_processes == [] and lib.ingester.paused_loaders == []  # none left behind, none left stopped


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_kept_loader_processes_serve_run_after_run(tmp_path, embedder, small_pdf, monkeypatch):
    """``keep_loaders`` (a `rag worker`, job after job): the processes of a run that finished serve the next
    run (not started again), idle and not stopped in between; one that died in between is replaced; a run
    cut short keeps none; the block's end ends them all."""
    started: list[subprocess.Popen] = []
    real_start = pool.start_loader_process

    def counting_start():
        started.append(real_start())
        return started[-1]

    monkeypatch.setattr(pool, "start_loader_process", counting_start)
    monkeypatch.setenv("LRC_INGEST_WORKERS", "2")
    lib = Library(tmp_path / "index")
    parts = []
    for i in range(4):
        folder = write_md(tmp_path / f"docs{i}")
        (folder / "extra.md").write_text(f"# Extra {i}\n\nPart {i} of the run: harbour number {i} has cranes.")
        parts.append(folder)
    with lib.ingester.keep_loaders() as spares:
        first = lib.ingest([parts[0], small_pdf])
        assert not first.failed and len(first.added) == 4 and len(started) == 2
        assert len(spares) == 2 and all(_proc_state(p.pid) in ("S", "R") for p in started), \
            [_proc_state(p.pid) for p in started]  # alive, waiting for a job, not left stopped
        copy = tmp_path / "copy.pdf"
        copy.write_bytes(small_pdf.read_bytes() + b"\n% another file\n")
        second = lib.ingest([parts[1], copy])
        assert not second.failed and len(second.added) == 4, second
        assert len(started) == 2, "the second run started loader processes again"

        started[0].kill()  # a kept process that dies while idle is not handed to the next run
        started[0].wait()
        copy.write_bytes(small_pdf.read_bytes() + b"\n% changed\n")
        third = lib.ingest([parts[2], copy])
        assert not third.failed and len(third.updated) == 1 and len(third.added) == 3, third
        assert len(started) == 3

        def cut(p):  # the first file loaded: the other process is still reading
            if p.stage == "loading":
                raise IngestStopped("cut")

        copy.write_bytes(small_pdf.read_bytes() + b"\n% changed again\n")
        other = tmp_path / "other.pdf"
        other.write_bytes(small_pdf.read_bytes() + b"\n% one more\n")
        try:
            lib.ingest([parts[3], copy, other], progress=cut)
        except IngestStopped:
            pass
        assert len(spares) == 0, "a run cut short kept its loader processes"
        for p in started:
            assert p.wait(timeout=10) is not None
    assert all(p.poll() is not None for p in started)
    assert lib.search("harbour number 2 cranes", k=1)[0].chunk.name == "extra.md"


def test_kept_loader_processes_are_capped(embedder):
    """Runs with other configs (another OCR share, another niceness) do not pile up idle processes: beyond
    the limit the oldest is ended."""
    from rag.ingest.records import LoaderConfig

    spares = pool.LoaderSpares(limit=2)
    configs = [LoaderConfig(embedder.path, embedder.window, nice=n) for n in (0, 1, 2)]
    feeders = []
    try:
        for config in configs:
            feeder = pool.LoaderProcess(pool.start_loader_process())
            feeder.start(config)
            feeders.append(feeder)
            spares.give(config, feeder)
        assert len(spares) == 2
        assert feeders[0].proc.poll() is not None, "the oldest idle process was not ended"
        assert spares.take(configs[0]) is None  # its config is no longer served
        assert spares.take(configs[2]) is feeders[2] and len(spares) == 1
    finally:
        spares.close()
        for feeder in feeders:
            feeder.finish(wait=2)
    assert all(f.proc.poll() is not None for f in feeders)


def test_the_bundled_guide_loads_in_a_thread_and_a_copy_of_it_in_processes(tmp_path, embedder, monkeypatch):
    """The app's own guide (docs_corpus/, a PDF among its files) is loaded in a thread: no hostile file to
    keep apart, and two process starts tripled the CPU of a fresh library's first start. The same files
    copied anywhere else are loaded in processes, like any PDF."""
    import shutil

    from rag.config import settings

    started = []
    real_start = pool.start_loader_process
    monkeypatch.setattr(pool, "start_loader_process", lambda: started.append(1) or real_start())
    guide = settings().docs_corpus
    assert any(p.suffix == ".pdf" for p in guide.iterdir()), f"{guide} has no PDF: this test needs one"
    lib = Library(tmp_path / "own")
    report = lib.ingest([guide])
    assert not started and not report.failed and len(report.added) == len(lib.guide_files())
    assert lib.guide_present()

    copy = shutil.copytree(guide, tmp_path / "copy")
    report = Library(tmp_path / "other").ingest([copy])
    assert started, "a copy of the guide's PDF outside the guide was not loaded in a loader process"
    assert not report.failed and report.chunks_added > 0
