"""The dense side of search: FAISS inner product over the chunks' embedded views.

A chunk may have several vectors ("views", see rag.ingest.chunking); it scores as its best view.
"""
from __future__ import annotations

import threading

import faiss
import numpy as np

# single queries: OpenMP start-up costs more than it saves, and its spinning threads slow the
# embedding model's own threads down (measured: hybrid queries 4x slower with the default)
faiss.omp_set_num_threads(1)


class DenseIndex:
    """FAISS IndexFlatIP behind an id map (so removed chunks' vectors go too), thread-safe.

    A chunk may have several vectors ("views", see rag.ingest.chunking): vector ids are
    ``chunk_id * MAX_VIEWS + j`` and a chunk scores as its best view."""

    MAX_VIEWS = 64

    def __init__(self, dim: int):
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.views: dict[int, int] = {}  # chunk id -> number of vectors
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.views)

    @property
    def vectors(self) -> int:
        return int(self.index.ntotal)

    def add(self, owners: np.ndarray, vecs: np.ndarray) -> None:
        """``owners[i]`` is the chunk id of ``vecs[i]``; a chunk's views come together, in order."""
        if len(owners) == 0:
            return
        owners = np.asarray(owners, dtype=np.int64)
        # j-th view of each chunk: position minus the position of the chunk's first view
        starts = np.r_[0, np.flatnonzero(owners[1:] != owners[:-1]) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(owners)]))
        j = np.arange(len(owners)) - first
        if (j >= self.MAX_VIEWS).any():
            raise ValueError(f"a chunk has more than {self.MAX_VIEWS} vectors")
        with self._lock:
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), owners * self.MAX_VIEWS + j)
            for o, n in zip(owners[starts], np.diff(np.r_[starts, len(owners)])):
                self.views[int(o)] = int(n)

    def _view_ids(self, ids) -> np.ndarray:
        out = [int(i) * self.MAX_VIEWS + j for i in ids for j in range(self.views.get(int(i), 0))]
        return np.asarray(out, dtype=np.int64)

    def remove(self, ids) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            vids = self._view_ids(ids)
            if len(vids):
                self.index.remove_ids(vids)
            for i in ids:
                self.views.pop(int(i), None)

    def search(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n chunk ids by their best view, with that score."""
        with self._lock:
            total = int(self.index.ntotal)
            if total == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            extra = total / max(len(self.views), 1)  # views per chunk on average
            D, I = self.index.search(q.reshape(1, -1).astype(np.float32), min(int(n * extra * 1.5) + 8, total))
        keep = I[0] >= 0
        chunk = I[0][keep] // self.MAX_VIEWS
        scores = D[0][keep]
        _, first = np.unique(chunk, return_index=True)  # results are sorted: first = best view
        first.sort()
        return chunk[first][:n], scores[first][:n]

    def scores_for(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each chunk's best-view score."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            counts = [self.views.get(int(i), 0) for i in ids]
            vids = self._view_ids(ids)
            vecs = self.index.reconstruct_batch(vids) if len(vids) else np.zeros((0, self.dim), np.float32)
        s = vecs @ q.astype(np.float32)
        out = np.full(len(ids), -1.0, dtype=np.float32)
        pos = 0
        for k, n in enumerate(counts):
            if n:
                out[k] = s[pos:pos + n].max()
                pos += n
        return out
