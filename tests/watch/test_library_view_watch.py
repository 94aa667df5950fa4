"""What the Library view shows of the server's watched folders (rag.chat.library_view.watched_folders)
with a real background watcher (rag.watch.start_background, as the chat server's start-up starts it)."""
from __future__ import annotations

import shutil
import time

import pytest

from rag import watch
from rag.chat import library_view

from .conftest import found, wait_for, write


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


def test_folders_added_in_the_view_are_watched_and_remembered(tmp_path, library, monkeypatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LRC_WATCH", str(tmp_path / "configured"))
    (tmp_path / "configured").mkdir()
    docs = tmp_path / "docs"
    a = write(docs / "a.md", "ocelot")
    try:
        w = watch.start_background(library=lambda: library)  # LRC_WATCH's folder only
        assert [f.path for f in w.status()] == [str(tmp_path / "configured")]
        for bad in ("relative/notes", str(tmp_path / "nowhere"), str(a)):
            with pytest.raises(ValueError):
                watch.watch_folder(bad)
        assert watch.watch_folder(docs) == docs
        wait_for(lambda: found(library, "ocelot") == {str(a)}, 60, "the added folder synced")
        assert watch.added_folders() == [docs]
        shown = {f["path"]: f["removable"] for f in library_view.watched_folders()}
        assert shown == {str(tmp_path / "configured"): False, str(docs): True}

        watch.stop_background()  # a restart watches both again
        w = watch.start_background(library=lambda: library)
        assert [f.path for f in w.status()] == [str(tmp_path / "configured"), str(docs)]
        with pytest.raises(LookupError):
            watch.unwatch_folder(tmp_path / "configured")  # the administrator's
        wait_for(lambda: w.status()[1].state == "watching", 60, "watching the added folder again")
        watch.unwatch_folder(docs)
        assert watch.added_folders() == [] and [f.path for f in w.status()] == [str(tmp_path / "configured")]
        time.sleep(1.5)  # the watch is renewed without it within check_s
        write(docs / "b.md", "pangolin")
        time.sleep(2.5)  # longer than a batch would take
        assert found(library, "pangolin") == set() and found(library, "ocelot") == {str(a)}  # documents stay
    finally:
        watch.stop_background()
