"""Content the library already holds is never embedded again (rag.ingest.reuse): a renamed or moved file,
the same content at two paths (in one run or later), on the embedded store and on PostgreSQL; a real
counter on the real embedder says what was embedded."""
from __future__ import annotations

import shutil

import pytest

from rag.library import Library

from .conftest import found, write


@pytest.fixture(params=["embedded", "postgresql"])
def any_library(request, tmp_path, embedder):
    lib = Library(tmp_path / "index" if request.param == "embedded" else request.getfixturevalue("pg").database())
    yield lib
    lib.backend.close()


def test_a_renamed_file_is_copied_not_embedded(tmp_path, any_library, embedded):
    lib = any_library
    docs = tmp_path / "docs"
    old = write(docs / "old.md", "zanthorp")
    write(docs / "other.md", "quibbleton")
    lib.ingest([docs])
    before = lib.store.files()[str(old)]
    embedded.reset()

    new = docs / "sub" / "new.md"
    new.parent.mkdir()
    old.rename(new)  # a move into a sub-folder, under a new name
    report = lib.ingest([docs])
    assert embedded.texts == 0, "a moved file was embedded again"
    assert report.reused == [str(new)] and report.added == [str(new)]
    assert found(lib, "zanthorp") == {str(old), str(new)}  # the old path goes when someone removes it
    lib.remove(old)
    assert found(lib, "zanthorp") == {str(new)}
    entry = lib.store.files()[str(new)]
    assert (entry.hash, entry.chunks, entry.kind) == (before.hash, before.chunks, before.kind)
    assert entry.display_name == "new.md"
    top = lib.search("zanthorp device in the cellar", k=1, mode="dense")  # the copied vectors are searched
    assert top and top[0].chunk.source == str(new)


def test_the_same_content_at_two_paths_is_embedded_once(tmp_path, library, embedded):
    docs = tmp_path / "docs"
    a = write(docs / "a.md", "frobnitzel")
    b = docs / "b.md"
    shutil.copy(a, b)
    write(docs / "c.md", "glimmerwick")
    report = library.ingest([docs])
    assert embedded.texts == 2, "two different contents, two passages: one embedding each"
    assert sorted(report.added) == [str(a), str(b), str(docs / "c.md")] and report.reused == [str(b)]
    hits = library.search("frobnitzel", k=5, mode="lexical")
    assert {h.chunk.source for h in hits} == {str(a), str(b)}  # each cited under its own path
    assert {h.chunk.doc_id for h in hits} == {"a.md", "b.md"}

    embedded.reset()
    d = tmp_path / "elsewhere" / "d.md"  # the same content again, later, in another folder
    d.parent.mkdir()
    shutil.copy(a, d)
    assert library.ingest([d]).reused == [str(d)]
    assert embedded.texts == 0
    assert found(library, "frobnitzel") == {str(a), str(b), str(d)}
    library.remove(a)  # removing one copy leaves the others
    assert found(library, "frobnitzel") == {str(b), str(d)}


def test_two_files_swapping_names_are_read_again(tmp_path, library):
    """A source the same run rewrites is never copied from: each name ends up with its new content."""
    docs = tmp_path / "docs"
    a, b = write(docs / "a.md", "plumbago"), write(docs / "b.md", "zedoary")
    library.ingest([docs])
    tmp = docs / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    report = library.ingest([docs])
    assert sorted(report.updated) == [str(a), str(b)] and not report.reused
    assert found(library, "plumbago") == {str(b)} and found(library, "zedoary") == {str(a)}


def test_a_re_index_embeds_again(tmp_path, library, embedded):
    """``force`` (Re-index) reads and embeds even content that is stored elsewhere."""
    docs = tmp_path / "docs"
    a = write(docs / "a.md", "wolfram")
    shutil.copy(a, docs / "b.md")
    library.ingest([docs])
    embedded.reset()
    report = library.ingest([docs], force=True)
    assert not report.reused and embedded.texts == 2
