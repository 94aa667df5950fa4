"""The watcher on real watchfiles over temp folders, a real library and the real embedding model: files
added, changed, removed and renamed under a watched folder are reflected in the library; temp files never
count; a burst is a few ingest runs; a folder that disappears is reported, its documents kept."""
from __future__ import annotations

import os
import shutil
import time

from .conftest import found, wait_for, write


def test_added_changed_removed_are_searchable_or_gone(tmp_path, library, watching, embedded):
    docs = tmp_path / "docs"
    write(docs / "first.md", "ambergloss")
    w = watching(docs)
    assert found(library, "ambergloss") == {str(docs / "first.md")}  # the start's sync indexed it

    t0 = time.perf_counter()
    note = write(docs / "note.md", "sprocketeer")
    added_s = wait_for(lambda: found(library, "sprocketeer") == {str(note)}, what="the new file searchable")
    t1 = time.perf_counter()
    write(note, "wobblethorn")  # changed: the new text in, the old out
    changed_s = wait_for(lambda: found(library, "wobblethorn") == {str(note)}, what="the changed text searchable")
    assert found(library, "sprocketeer") == set()
    print(f"\nchange to searchable: added {added_s:.2f} s, changed {changed_s:.2f} s "
          f"(from the write: {t1 - t0:.2f} s, {time.perf_counter() - t1:.2f} s)")
    assert added_s < 5 and changed_s < 5, "a small file takes longer than 5 s to be searchable"

    note.unlink()
    wait_for(lambda: str(note) not in library.store.files(), what="the removed file gone")
    assert found(library, "wobblethorn") == set()
    wait_for(lambda: any(line.startswith("removed") and line.endswith("note.md") for line in w.lines), what="said")
    wait_for(lambda: w.status()[0].files == 1, what="the folder's count")
    assert w.status()[0].state == "watching"


def test_a_rename_is_searchable_under_its_new_path_without_embedding(tmp_path, library, watching, embedded):
    docs = tmp_path / "docs"
    old = write(docs / "draft.md", "quillobar")
    watching(docs)
    embedded.reset()
    new = docs / "archive" / "final.md"
    new.parent.mkdir()
    old.rename(new)
    wait_for(lambda: found(library, "quillobar") == {str(new)}, what="the file under its new name alone")
    assert embedded.texts == 0, "a renamed file was embedded again"

    shutil.copy(new, docs / "copy.md")  # the same content at a second path: listed and cited there too
    wait_for(lambda: found(library, "quillobar") == {str(new), str(docs / "copy.md")}, what="the copy searchable")
    assert embedded.texts == 0


def test_temp_files_and_hidden_files_never_count(tmp_path, library, watching):
    docs = tmp_path / "docs"
    write(docs / "real.md", "tumbleroot")
    w = watching(docs)
    runs = w.runs
    names = [".real.md.swp", "real.md~", ".#real.md", "#real.md#", "notes.tmp", "paper.pdf.part",
             "paper.pdf.crdownload", "~$report.docx", ".hidden.md", ".cache/inside.md"]
    for name in names:
        write(docs / name, "gravelspoon")
    time.sleep(2.0)  # longer than a batch takes to come (debounce 1.6 s)
    assert w.runs == runs, "a temp or hidden file started an ingest"
    marker = write(docs / "marker.md", "pellucid")  # after them: once it is in, they were seen and dropped
    wait_for(lambda: found(library, "pellucid") == {str(marker)}, what="the marker file searchable")
    assert found(library, "gravelspoon") == set()
    assert set(library.store.files()) == {str(docs / "real.md"), str(marker)}


def test_a_burst_of_changes_is_a_few_ingest_runs(tmp_path, library, watching, embedded):
    """200 new files (20 contents, 10 copies each: each content embedded once), then the 200 touched as a
    `git checkout` does to files it rewrites unchanged: each burst is one or a few ingest runs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    w = watching(docs)
    runs = w.runs
    files = [write(docs / f"part{i // 50}" / f"n{i:03d}.md", f"burstword{i % 20:02d}") for i in range(200)]
    wait_for(lambda: len(library.store.files()) == 200, 60, "200 new files indexed")
    created_runs = w.runs - runs
    assert embedded.texts == 20, "each of the 20 contents embedded once"
    assert found(library, "burstword07") == {str(f) for f in files[7::20]}

    embedded.reset()
    runs = w.runs
    later = time.time_ns() + 10**9
    for f in files:
        os.utime(f, ns=(later, later))
    wait_for(lambda: all(e.mtime_ns == later for e in library.store.files().values()), 60, "200 touches seen")
    touched_runs = w.runs - runs
    print(f"\n200 files created: {created_runs} ingest run(s); 200 touched: {touched_runs} run(s)")
    assert created_runs <= 5 and touched_runs <= 5, (created_runs, touched_runs)
    assert embedded.texts == 0, "touched files with the same content were embedded again"


def test_a_folder_that_disappears_is_reported_and_kept(tmp_path, library, watching):
    docs = tmp_path / "docs"
    a, b = write(docs / "a.md", "hollyhock"), write(docs / "sub" / "b.md", "marrowfat")
    w = watching(docs)
    away = tmp_path / "away"
    docs.rename(away)  # gone (an unmounted drive, a folder moved off)
    wait_for(lambda: w.status()[0].state == "missing", what="the folder reported missing")
    time.sleep(1.0)  # the removals the deletion triggered would have happened by now
    assert set(library.store.files()) == {str(a), str(b)}
    assert found(library, "hollyhock") == {str(a)}
    assert any(line.startswith("MISSING") for line in w.lines)

    shutil.rmtree(away / "sub")  # it comes back without b: synced, b removed, watched again
    away.rename(docs)
    wait_for(lambda: w.status()[0].state == "watching" and str(b) not in library.store.files(),
             what="the folder synced again")
    c = write(docs / "c.md", "bellwether")
    wait_for(lambda: found(library, "bellwether") == {str(c)}, what="a new file after its return")
    assert set(library.store.files()) == {str(a), str(c)}


def test_the_start_syncs_what_changed_while_nobody_watched(tmp_path, library, watching):
    docs = tmp_path / "docs"
    a, b = write(docs / "a.md", "cobblestone"), write(docs / "b.md", "dandelion")
    library.ingest([docs])
    b.unlink()
    c = write(docs / "c.md", "eiderdown")
    elsewhere = write(tmp_path / "elsewhere" / "x.md", "fenugreek")  # not under the folder: left alone
    library.ingest([elsewhere])
    elsewhere.unlink()
    watching(docs)
    assert set(library.store.files()) == {str(a), str(c), str(elsewhere)}
    assert found(library, "eiderdown") == {str(c)} and found(library, "dandelion") == set()


def test_a_folder_missing_at_start_is_watched_once_it_appears(tmp_path, library, watching):
    docs = tmp_path / "later"
    w = watching(docs)
    assert w.status()[0].state == "missing"
    f = write(docs / "a.md", "gallimaufry")
    wait_for(lambda: found(library, "gallimaufry") == {str(f)}, what="the folder's file once it appeared")
    wait_for(lambda: w.status()[0].state == "watching", what="watching it")  # the sync ends after its commit
