"""Ownership lives in the library (rag.owners, issue 24 item 7): the owner of a chat upload is recorded in
the store on both backends (the embedded SQLite store and a real PostgreSQL + pgvector from pgserver),
kept through a re-index, a command-line index, a change of model and a copy between backends, read by
every place that decides visibility (the retrieval scope, the Library view's rows and rights), and filled
once from the upload paths when an old library is opened. Real parts: the real embedding model, real
files, real databases."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from rag import catalog, owners
from rag import pipeline as pl
from rag.library import Library
from rag.store import Store
from .test_library import write_docs
from .test_store_backends import sql

ALICE = "# Brindlewick clock\n\nThe Brindlewick clock must be wound with a silver key every 23 days.\n"
BOB = "# Marrowgate bees\n\nThe Marrowgate bees are fed with clover syrup every 11 hours.\n"


def upload(lib, tmp_path: Path, name: str, text: str, **how) -> str:
    """A file dropped into a chat, ingested the way the chat does (pipeline.ingest_uploads); its path."""
    src = tmp_path / f"dropped-{name}"
    src.write_text(text)

    async def run():
        return [ev async for ev in pl.ingest_uploads([(src, name)], lib=lib, **how)]

    report = asyncio.run(run())[-1].report
    done = report.added + report.updated + report.unchanged
    assert len(done) == 1 and not report.failed, report.summary()
    return done[0]


def location(lib) -> str | Path:
    return lib.index_dir


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_an_upload_is_its_users_and_stays_theirs(tmp_path, data, any_library):
    lib = any_library
    docs = write_docs(tmp_path / "docs")
    lib.ingest([docs])  # from the command line: shared
    mine = upload(lib, tmp_path, "brindlewick.md", ALICE, owner="alice")
    bobs = upload(lib, tmp_path, "marrowgate.md", BOB, uploads_dir=owners.uploads_dir("bob"))  # app.py's call
    assert Path(mine).is_relative_to(data / "uploads" / "users" / "alice")
    entries = {e.name: e.owner for e in lib.files()}
    assert entries == {"brindlewick.md": "alice", "marrowgate.md": "bob", "kettle.md": None, "garden.txt": None,
                       "astro.html": None}
    assert lib.owners() == {mine: "alice", bobs: "bob"}

    # a command-line index of the whole uploads folder, a forced re-index: the owners stay
    report = lib.ingest([data / "uploads"], force=True)
    assert sorted(report.updated) == sorted([mine, bobs])
    asyncio.run(_drain(pl.reindex(mine, "alice", lib=lib)))
    assert lib.owners() == {mine: "alice", bobs: "bob"}

    # what each one sees: retrieval scope, Library rows and rights
    for user, own, other in (("alice", mine, bobs), ("bob", bobs, mine)):
        scope = pl.visible_scope(lib, user)
        assert own in scope and other not in scope and str((docs / "kettle.md").resolve()) in scope
        hits = lib.search("Brindlewick clock silver key; Marrowgate bees clover syrup", k=10, scope=scope)
        assert {h.chunk.source for h in hits} & {mine, bobs} == {own}, user
        rows = {d.path: d for d in catalog.listing(lib, user)}
        assert own in rows and other not in rows and rows[own].manageable
        assert not rows[str((docs / "kettle.md").resolve())].manageable
        with pytest.raises(LookupError):
            catalog.managed(lib, other, user)
    shared_only = pl.visible_scope(lib, None)  # without users, nobody's upload is searched
    assert mine not in shared_only and bobs not in shared_only and len(shared_only) == 3
    assert catalog.may_manage(None, None) and not catalog.may_manage(None, "alice")
    assert catalog.may_manage("alice", "alice") and not catalog.may_manage("alice", "bob")


async def _drain(events):
    return [ev async for ev in events]


def test_a_user_upload_of_a_file_indexed_as_shared_becomes_theirs(tmp_path, data, any_library):
    """A copy in a user's folder that the command line indexed first (shared) is recorded as theirs when
    they upload it, although its content is unchanged."""
    lib = any_library
    mine = upload(lib, tmp_path, "brindlewick.md", ALICE)  # no users yet: shared
    assert lib.owners() == {}
    folder = owners.uploads_dir("alice")
    stored = pl.store_upload(mine, "brindlewick.md", folder)
    lib.ingest([stored])
    assert lib.owners() == {}, "a file indexed from the command line is shared"
    again = upload(lib, tmp_path, "brindlewick.md", ALICE, owner="alice")
    assert again == str(stored) and lib.owners() == {again: "alice"}


def test_a_model_change_keeps_the_owners(tmp_path, data, any_library):
    """Files whose vectors are dropped (another model) wait as pending with their owner, and are embedded
    again as the same user's: never shared by a rebuild."""
    lib = any_library
    mine = upload(lib, tmp_path, "brindlewick.md", ALICE, owner="alice")
    lib.ingest([write_docs(tmp_path / "docs")])
    if isinstance(lib.store, Store):
        lib.store.set_model("another-model|dim=384|max=256")
        again = Library(location(lib))
        again.load()  # the configured model again: every file pending
    else:
        lib.store.set_model("another-model|dim=384|max=256", 384)
        again = Library(location(lib))
        again.backend.rebuild()
    assert again.stats().files == 0 and mine in again.pending() and again.owners() == {mine: "alice"}
    report = again.resume()
    assert mine in report.added and len(report.added) == 4
    assert {e.path: e.owner for e in again.files()}[mine] == "alice" and again.owners() == {mine: "alice"}
    again.backend.close()


def test_a_question_never_gets_an_upload_added_after_its_scope(tmp_path, data, any_library):
    """Another instance may commit a user's upload between the scope and the search: its passages are
    left out of the answer all the same."""
    lib = any_library
    lib.ingest([write_docs(tmp_path / "docs")])
    assert pl.visible_scope(lib, "bob") is None  # nothing to hide yet
    mine = upload(lib, tmp_path, "brindlewick.md", ALICE, owner="alice")
    found = lib.retrieve("Brindlewick clock silver key", k=3, scope=None)
    assert found.hits[0].chunk.source == mine
    kept = pl._visible_hits(lib, "bob", found)
    assert kept.hits and all(h.chunk.source != mine for h in kept.hits)
    assert pl._visible_hits(lib, "alice", found) is found


# ------------------------------------------------------------------ old libraries: owners filled once
def _old_library(lib, tmp_path: Path) -> tuple[str, str, str]:
    """A library as the code before owners left it: uploads under users/<name>/ (one of this instance, one
    of another instance's data folder, pending), a shared file; (alice's, carol's pending, shared)."""
    folder = owners.uploads_dir("alice") / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "brindlewick.md").write_text(ALICE)
    docs = write_docs(tmp_path / "docs")
    lib.ingest([folder, docs])
    carol = "/srv/other-instance/data/uploads/users/carol/fedcba9876543210/notes.md"
    lib.store.add_pending([carol])
    return str((folder / "brindlewick.md").resolve()), carol, str((docs / "kettle.md").resolve())


def test_an_old_embedded_store_gets_its_owners_from_paths_once(tmp_path, data, embedder):
    lib = Library(tmp_path / "index")
    mine, carol, shared = _old_library(lib, tmp_path)
    lib.backend.close()
    db = tmp_path / "index" / "library.sqlite3"
    with sqlite3.connect(db) as c:  # back to the schema without owners
        for table in ("files", "pending"):
            c.execute(f"ALTER TABLE {table} DROP COLUMN owner")
    opened = Library(tmp_path / "index")
    assert opened.owners() == {mine: "alice", carol: "carol"}
    entries = {e.path: e.owner for e in opened.files()}
    assert entries[mine] == "alice" and entries[shared] is None and opened.pending() == [carol]
    assert pl.visible_scope(opened, "bob") is not None and mine not in pl.visible_scope(opened, "bob")
    opened.backend.close()
    with sqlite3.connect(db) as c:  # the path rule ran once: it does not decide again
        c.execute("UPDATE files SET owner = NULL")
    again = Library(tmp_path / "index")
    assert again.owners() == {carol: "carol"}
    again.backend.close()


def test_an_old_postgresql_library_gets_its_owners_from_paths_once(tmp_path, data, pg, embedder):
    uri = pg.database()
    lib = Library(uri)
    mine, carol, shared = _old_library(lib, tmp_path)
    lib.backend.close()
    for table in ("lrc_files", "lrc_pending"):  # back to schema 1
        sql(uri, f"ALTER TABLE {table} DROP COLUMN owner")
    sql(uri, "UPDATE lrc_meta SET value = '1' WHERE key = 'schema'")
    opened = Library(uri)
    assert sql(uri, "SELECT value FROM lrc_meta WHERE key = 'schema'") == [("3",)]
    assert opened.owners() == {mine: "alice", carol: "carol"}
    assert {e.path: e.owner for e in opened.files()}[shared] is None
    sql(uri, "UPDATE lrc_files SET owner = NULL")
    again = Library(uri)  # schema 3 already: the path rule does not run again
    assert again.owners() == {carol: "carol"}
    for lib_ in (opened, again):
        lib_.backend.close()


def test_legacy_owner_reads_only_the_upload_layout():
    assert owners.legacy_owner("/a/data/uploads/users/alice/0123456789abcdef/x.md") == "alice"
    assert owners.legacy_owner("/b/.data/uploads/users/bob.smith/f.txt") == "bob.smith"
    for shared in ("/a/data/uploads/0123456789abcdef/x.md", "/home/me/users/alice/x.md",
                   "/a/uploads/users/alice", "/a/uploads/users/../x/y.md", "/a/uploads/users/-x/y.md"):
        assert owners.legacy_owner(shared) is None, shared


# ------------------------------------------------------------------ migrate keeps owners
def test_migrate_copies_the_owners_both_ways(tmp_path, data, pg, embedder):
    from rag.backends.migrate import migrate

    source = Library(tmp_path / "index")
    mine = upload(source, tmp_path, "brindlewick.md", ALICE, owner="alice")
    source.ingest([write_docs(tmp_path / "docs")])
    later = str(owners.uploads_dir("bob") / "0123456789abcdef" / "later.md")
    source.store.add_pending([later], {later: "bob"})
    uri = pg.database()
    assert migrate(tmp_path / "index", uri).files == 4
    there = Library(uri)
    assert there.owners() == {mine: "alice", later: "bob"}
    assert {e.path: e.owner for e in there.files()} == {e.path: e.owner for e in source.files()}
    sql(uri, "UPDATE lrc_files SET owner = NULL")  # a target whose owner differs is copied again
    assert migrate(tmp_path / "index", uri).files == 1 and there.owners()[mine] == "alice"
    assert migrate(uri, tmp_path / "back").files == 4
    back = Library(tmp_path / "back")
    assert back.owners() == {mine: "alice", later: "bob"}
    there.backend.close()
