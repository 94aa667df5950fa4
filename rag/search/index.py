"""The in-memory search structures over one store: FAISS (dense) and BM25 (lexical), and which
store generation they reflect.

The owner (the library) loads them from ``Store.load_all`` and, after each write it makes to the
store, hands the change in with ``apply``; ``rank`` may run in any number of threads meanwhile.
The store counts one generation per write, so a change made on top of generation ``g`` is
``apply(g + 1, ...)``. ``apply`` keeps the memory honest on its own: a change the memory already
holds (a reload read it) is skipped, and a change that does not follow the memory's generation
(another process wrote in between) is not applied; ``generation`` becomes None instead, which
tells the owner to ``load`` again.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from rag.schema import Mode
from rag.search import fusion
from rag.search.dense import DenseIndex
from rag.search.lexical import LexicalIndex


@dataclass
class Added:
    """One committed file's new chunks."""

    ids: np.ndarray  # chunk ids (int64)
    owners: np.ndarray  # chunk id per vector (a chunk may have several embedded views)
    vectors: np.ndarray
    texts: list[str]  # the text BM25 indexes (ChunkDraft.embed_text), one per id


class SearchIndex:
    def __init__(self, dim: int):
        self.dim = dim
        self._lock = threading.RLock()
        self._dense: DenseIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._generation: int | None = None

    def __len__(self) -> int:
        """Chunks in memory (dense side)."""
        dense = self._dense
        return len(dense) if dense is not None else 0

    @property
    def generation(self) -> int | None:
        """The store generation the memory reflects (None = not loaded, or to be loaded again)."""
        return self._generation

    def load(self, generation: int, ids: np.ndarray, vecs: np.ndarray, owners: np.ndarray,
             texts: list[str]) -> None:
        """Replace the memory with a snapshot (the arguments as ``Store.load_all`` returns them).
        Built aside: ``rank`` keeps answering from the old structures until the swap."""
        dense = DenseIndex(self.dim)
        dense.add(owners, vecs)
        lexical = LexicalIndex()
        lexical.add(ids, texts)
        with self._lock:
            self._dense, self._lexical, self._generation = dense, lexical, generation

    def apply(self, generation: int, removed: list[int], added: list[Added]) -> None:
        """One store write that made ``generation``: chunks ``removed``, then ``added`` (per file)."""
        with self._lock:
            if self._generation is None or self._generation >= generation:
                return  # not loaded (the next load reads it) or already holds it (a reload read it)
            if self._generation != generation - 1:
                self._generation = None  # a write made elsewhere came between: the owner loads again
                return
            self._dense.remove(removed)
            self._lexical.remove(removed)
            for a in added:
                self._dense.add(a.owners, a.vectors)
                self._lexical.add(np.asarray(a.ids, dtype=np.int64), a.texts)
            self._generation = generation

    def rank(self, query_vec: np.ndarray | None, query: str, k: int,
             mode: Mode | str, allowed: np.ndarray | None = None) -> list[tuple[int, float, dict]]:
        """[(chunk id, score, {"dense": .., "lexical": ..}), ...] best first, at most k (see
        ``rag.search.fusion.rank``; ``allowed``: only these chunk ids); nothing before the first ``load``."""
        mode = Mode.parse(mode, search_only=True)
        with self._lock:
            dense, lexical = self._dense, self._lexical
        if dense is None or lexical is None:
            return []
        return fusion.rank(query_vec, query, dense, lexical, k, mode, allowed=allowed)

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of ``text`` that no indexed chunk holds (all of them before the first ``load``)."""
        with self._lock:
            lexical = self._lexical
        return lexical.unknown_terms(text) if lexical is not None else []
