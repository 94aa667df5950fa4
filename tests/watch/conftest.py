"""Shared parts of the watched-folder tests, all real: the embedding model (loaded once per process), a
counter of the texts it embeds (a wrapper around the real object's ``encode``), libraries in temp
folders, and ``Watcher``s on real ``watchfiles`` over temp folders."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.library import Library
from rag.watch import Watcher
from retrieval.conftest import embedder  # noqa: F401  (the real model; `pg`: tests/conftest.py)


class Counter:
    """How many times the real embedder encoded, and how many texts (queries included: assert with
    lexical searches, which embed nothing)."""

    def __init__(self):
        self.calls = 0
        self.texts = 0

    def reset(self) -> None:
        self.calls = self.texts = 0


@pytest.fixture
def embedded(embedder, monkeypatch) -> Counter:
    counter = Counter()
    real = embedder.encode

    def encode(texts, *args, **kwargs):
        counter.calls += 1
        counter.texts += len(texts)
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embedder, "encode", encode)
    return counter


@pytest.fixture
def library(tmp_path, embedder):
    lib = Library(tmp_path / "index")
    assert lib.embedder is embedder  # the counted object is the one the library embeds with
    yield lib
    lib.backend.close()


def write(path: Path, word: str, extra: str = "") -> Path:
    """A tiny Markdown file whose one passage holds ``word`` (a made-up word no other file holds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Note on {word}\n\nThe {word} device hums quietly in the cellar. {extra}\n", encoding="utf-8")
    return path


def found(lib: Library, word: str) -> set[str]:
    """The files whose passages hold ``word`` (a lexical search: nothing is embedded)."""
    hits = lib.search(word, k=20, mode="lexical")
    return {h.chunk.source for h in hits if word.lower() in h.chunk.text.lower()}


def wait_for(condition, timeout: float = 30.0, what: str = "the condition") -> float:
    """Seconds until ``condition()`` is true; fails after ``timeout``."""
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter() - t0


@pytest.fixture
def watching(library):
    """Start a Watcher on folders over ``library`` (what it says is kept in ``.lines``); waits until it
    watches (or reports every folder missing); stopped at the end of the test."""
    started: list[Watcher] = []

    def start(*folders: Path, **kwargs) -> Watcher:
        lines: list[str] = []
        kwargs = {"debounce_ms": 1600, "step_ms": 50, "check_s": 0.5, "settle_s": 0.3, **kwargs}
        w = Watcher(folders, library, say=lines.append, **kwargs)
        w.lines = lines
        started.append(w.start())
        wait_for(lambda: all(s.state in ("watching", "missing") for s in w.status()), 60, "watching")
        return w

    yield start
    for w in started:
        w.stop()
        assert not w.running, "the watcher's thread did not end"
