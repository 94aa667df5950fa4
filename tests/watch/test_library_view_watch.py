"""What the Library view shows of the server's watched folders (rag.chat.library_view.watched_folders)
with a real background watcher (rag.watch.start_background, as the chat server's start-up starts it)."""
from __future__ import annotations

import shutil

from rag import watch
from rag.chat import library_view

from .conftest import wait_for, write


def test_the_view_lists_each_watched_folder_with_its_state(tmp_path, library):
    docs, gone = tmp_path / "docs", tmp_path / "not-yet"
    write(docs / "a.md", "nasturtium"), write(docs / "b.md", "oleander")
    assert library_view.watched_folders() == []  # no watcher: nothing shown
    w = watch.start_background([docs, gone], library=lambda: library)
    try:
        assert watch.background() is w and w.running
        wait_for(lambda: [f["state"] for f in library_view.watched_folders()] == ["watching", "missing"],
                 60, "both folders' states")
        shown = library_view.watched_folders()
        assert [(f["path"], f["files"]) for f in shown] == [(str(docs), 2), (str(gone), 0)]
        assert shown[1]["text"] == "missing: its documents are kept"
        assert [f["path"] for f in library_view.watched_folders(with_paths=False)] == ["docs", "not-yet"]
        shutil.rmtree(docs)
        wait_for(lambda: library_view.watched_folders()[0]["state"] == "missing", 30, "the folder missing")
        assert library_view.watched_folders()[0]["files"] == 2  # reported, not emptied
    finally:
        watch.stop_background()
    assert watch.background() is None and not w.running
