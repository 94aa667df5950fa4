"""Where the library keeps its passages and how it searches them: one interface, two backends.

- ``embedded`` (the default): ``LiveIndex`` over ``rag.store.Store`` (SQLite: vectors, passages,
  manifest) with the search structures in memory (``rag.search.SearchIndex``: FAISS + BM25) following
  the store's generation counter. One machine; several processes may share the folder.
- ``postgres`` (``LRC_STORE=postgresql://...``): ``PgBackend`` over ``PgStore``: passages, manifest and
  vectors in PostgreSQL tables (pgvector HNSW index, each passage's BM25 terms with a GIN index);
  dense and lexical candidates come from SQL (the same BM25 scores as embedded), the fusion is
  ``rag.search.fusion``'s. Several app
  instances share one library; nothing is held in memory, so a write by one is seen by the others at
  their next query.

``Backend`` is what ``rag.library.Library`` (and, as ``rag.ingest.IndexWriter``, the ingester) talks
to; its ``store`` (``LibraryStore``) holds the manifest, the metadata and the passages. Errors are
``rag.store.StoreError`` subclasses with a sentence to show (unreachable, timeout, model mismatch).
``migrate`` copies a library between backends without embedding anything again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from rag.embedder import DEFAULT_MODEL, Embedder
from rag.schema import Chunk, Mode
from rag.store import FileCommit, FileEntry

__all__ = ["Backend", "LibraryStore", "is_database", "open_backend", "stored_model_is"]


class LibraryStore(Protocol):
    """The persistent part: manifest, pending files, metadata, passages (both backends' stores)."""

    def meta(self, key: str, default: str | None = None) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def model_id(self) -> str | None: ...
    def files(self) -> dict[str, FileEntry]: ...
    def owners(self) -> dict[str, str]: ...  # path -> owner (rag.owners) of files that are a user's upload
    def counts(self) -> tuple[int, int]: ...  # (files, chunks)
    def pending(self) -> list[str]: ...
    def add_pending(self, paths: list[str], owners: dict[str, str] | None = None) -> None: ...
    def clear_pending(self, paths: list[str]) -> None: ...
    def touch(self, path: str, size: int, mtime_ns: int, display_name: str | None = None) -> None: ...
    def chunks(self, ids: list[int]) -> dict[int, Chunk]: ...
    def chunk_ids(self, paths: list[str]) -> list[int]: ...
    def chunk_tokens(self) -> list[int]: ...
    def file_rows(self, path: str, dim: int) -> tuple[list[dict], np.ndarray]: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """The library's storage and search (implements ``rag.ingest.IndexWriter``)."""

    store: LibraryStore
    location: str  # where it is, for people (a folder, or the database URI without its password)

    def model_known(self) -> bool:
        """The stored vectors come from the configured model (by name: no model load needed)."""

    def ensure_model(self) -> None:
        """Before planning an ingest: a new library or another model is checked (see ``load``)."""

    def load(self) -> None:
        """The embedding model loaded and checked against the stored vectors' (embedded: another model
        empties the index for a rebuild; PostgreSQL: ``rag.store.ModelMismatch`` unless ``rebuild``),
        and the search current with the store."""

    def rebuild(self) -> None:
        """Drop every stored vector (their files become pending) and record the configured model."""

    def commit(self, commits: list[FileCommit]) -> None:
        """Files' new passages and vectors, all or nothing, searchable once this returns."""

    def remove(self, paths: list[str]) -> int:
        """Drop files (passages, vectors, manifest rows, pending marks). Returns passages removed."""

    def rank(self, query_vec: np.ndarray | None, query: str, k: int, mode: Mode,
             allowed: np.ndarray | None = None) -> list[tuple[int, float, dict]]:
        """[(chunk id, score, {"dense": .., "lexical": ..}), ...] best first (``rag.search.fusion.rank``'s
        contract; ``allowed``: only these chunk ids, scored exactly)."""

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of ``text`` (as ``rag.search.lexical.tokenize`` gives them) that no passage holds."""

    def close(self) -> None: ...


def stored_model_is(store: LibraryStore, embed_model: str | None) -> bool:
    """The store's vectors come from ``embed_model`` (by name, as recorded: no model load needed)."""
    stored = store.model_id() or ""
    return bool(stored) and stored.split("|", 1)[0] == (embed_model or DEFAULT_MODEL).strip()


def is_database(location: str | Path | None) -> bool:
    """A PostgreSQL URI (``postgresql://`` or ``postgres://``) rather than a folder."""
    return str(location or "").startswith(("postgresql://", "postgres://"))


def open_backend(location: str | Path, embed_model: str, embedder: Callable[[], Embedder]) -> Backend:
    """The backend for ``location``: a PostgreSQL URI, else the embedded store in that folder."""
    if is_database(location):
        from rag.backends.postgres import PgBackend  # psycopg is only imported when used

        return PgBackend(str(location), embed_model, embedder)
    from rag.backends.embedded import LiveIndex
    from rag.store import Store

    return LiveIndex(Store(location), embedder, embed_model)
