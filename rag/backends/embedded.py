"""The embedded backend (the default): ``rag.store.Store`` (SQLite) with the search structures in memory
(``rag.search.SearchIndex``: FAISS + BM25), kept current with the store through its generation counter."""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from rag.backends import stored_model_is
from rag.embedder import Embedder
from rag.schema import Mode
from rag.search import Added, SearchIndex
from rag.store import FileCommit, Store


class LiveIndex:
    """The search index in memory, kept current with the store: every write goes to the store
    and, in the same step, to memory; a write made by another process (the store's generation
    moved) makes it read everything again. Implements ``rag.backends.Backend``."""

    def __init__(self, store: Store, embedder: Callable[[], Embedder], embed_model: str):
        self.store = store
        self.location = str(store.dir)
        self._embedder = embedder
        self.embed_model = embed_model
        self._lock = threading.RLock()
        self.search: SearchIndex | None = None  # None until the first load()

    def model_known(self) -> bool:
        """The store's vectors come from the configured model (by name: no model load needed)."""
        return stored_model_is(self.store, self.embed_model)

    def ensure_model(self) -> None:
        if self.search is None and not self.model_known():
            self.load()  # a new index or another model: check (and rebuild) before planning

    def load(self) -> None:
        """Model checked (a different model than the stored vectors' -> rebuild) and memory current."""
        with self._lock:
            if self.search is None:
                embedder = self._embedder()
                if self.store.model_id() != embedder.model_id:
                    self.store.set_model(embedder.model_id)
                self.search = SearchIndex(embedder.dim)
            if self.search.generation is None or self.store.generation() != self.search.generation:
                self._reload()

    def rebuild(self) -> None:
        """Embedded libraries rebuild by themselves on a change of model (``load``)."""
        self.load()

    def _reload(self) -> None:
        self.search.load(*self.store.load_all(self.search.dim))

    def commit(self, commits: list[FileCommit]) -> None:
        with self._lock:
            _, after, removed, added = self.store.commit(commits)
            self._apply(after, removed, [_added(c, ids) for c, (ids, _) in zip(commits, added)])

    def remove(self, paths: list[str]) -> int:
        """Drop files from the store and memory. Returns the number of chunks removed."""
        with self._lock:
            _, after, removed = self.store.remove(paths)
            self._apply(after, removed, [])
            return len(removed)

    def _apply(self, generation: int, removed: list[int], added: list[Added]) -> None:
        self.search.apply(generation, removed, added)
        if self.search.generation != generation:  # another process wrote meanwhile: read everything again
            self._reload()

    def rank(self, query_vec, query: str, k: int, mode: Mode, allowed=None) -> list[tuple[int, float, dict]]:
        self.load()
        return self.search.rank(query_vec, query, k, mode, allowed)

    def unknown_terms(self, text: str) -> list[str]:
        self.load()
        return self.search.unknown_terms(text) if self.search is not None else []

    def close(self) -> None:
        self.store.close()


def _added(commit: FileCommit, ids: list[int]) -> Added:
    arr = np.asarray(ids, dtype=np.int64)
    owners = np.repeat(arr, [len(d.vector_texts) for d in commit.drafts])
    return Added(ids=arr, owners=owners, vectors=commit.vectors, texts=[d.embed_text for d in commit.drafts])
