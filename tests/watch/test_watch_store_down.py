"""The library's database goes down under a watcher, for real (pgserver stopped): the folder is in state
"error" with the reason, the watcher keeps running, and once the database is back the folder is synced
again, with what changed while it was down."""
from __future__ import annotations

from rag.library import Library
from rag.watch import Watcher

from .conftest import found, wait_for, write


def test_a_database_that_goes_away_and_comes_back(tmp_path, pg, embedder):
    lib = Library(pg.database())
    docs = tmp_path / "docs"
    a = write(docs / "a.md", "lanternfish")
    lines: list[str] = []
    w = Watcher([docs], lib, say=lines.append, check_s=0.5, settle_s=0.2, retry_s=2.0).start()
    try:
        wait_for(lambda: w.status()[0].state == "watching", 60, "watching")
        assert found(lib, "lanternfish") == {str(a)}
        pg.stop()
        b = write(docs / "b.md", "moonraker")
        wait_for(lambda: w.status()[0].state == "error", 60, "the folder in state error")
        assert any(line.startswith("FAILED") for line in lines) and w.running
        assert "trying again" in w.status()[0].last
        pg.start()
        wait_for(lambda: w.status()[0].state == "watching", 60, "the folder synced again")
        assert found(lib, "moonraker") == {str(b)} and found(lib, "lanternfish") == {str(a)}
        c = write(docs / "c.md", "nightjar")  # and it keeps watching
        wait_for(lambda: found(lib, "nightjar") == {str(c)}, 30, "a new file after the database's return")
    finally:
        w.stop()
        lib.backend.close()
    assert not w.running
