"""Question -> ranked chunk ids: dense (FAISS inner product), lexical (BM25) or both fused.

Fusion: the candidates are the union of the top ``CANDIDATES`` of each retriever; every candidate
gets BOTH scores (the dense score is computed exactly from its stored vector, the BM25 score from
the full score vector), each is normalised over the candidates (z-score by default, min-max
selectable), and the fused score is ``(1 - wl) * dense + wl * lexical``. Unlike reciprocal-rank
fusion this keeps the retrievers' score margins, so a weak lexical ranking cannot push a clear
dense winner down (measured: RRF < dense alone on pyfaq).

The lexical weight ``wl`` starts at ``1 - DENSE_WEIGHT`` and follows each retriever's confidence
in this query: the margin of its best candidate over its second (in normalised units). A retriever
that singles one passage out gets more say than one whose top candidates are tied:
``wl = (1 - DENSE_WEIGHT) * (1 + FUSION_GAP * (gap_lexical - gap_dense))``, kept within [0, 0.5].
Both weights are the defaults the chat uses too.
"""
from __future__ import annotations

import threading

import faiss
import numpy as np

from rag.config import settings
from rag.lexical import LexicalIndex

# single queries: OpenMP start-up costs more than it saves, and its spinning threads slow the
# embedding model's own threads down (measured: hybrid queries 4x slower with the default)
faiss.omp_set_num_threads(1)

MODES = ("hybrid", "dense", "lexical")
CANDIDATES = 100
DENSE_WEIGHT = settings().dense_weight
FUSION_NORM = settings().fusion_norm  # "z" or "minmax"
FUSION_GAP = settings().fusion_gap  # 0: fixed weights
MAX_LEXICAL_WEIGHT = 0.5


class DenseIndex:
    """FAISS IndexFlatIP behind an id map (so removed chunks' vectors go too), thread-safe.

    A chunk may have several vectors ("views", see rag.chunking): vector ids are
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
            vids = np.asarray([int(i) * self.MAX_VIEWS + j for i, n in zip(ids, counts) for j in range(n)],
                              dtype=np.int64)
            vecs = self.index.reconstruct_batch(vids) if len(vids) else np.zeros((0, self.dim), np.float32)
        s = vecs @ q.astype(np.float32)
        out = np.full(len(ids), -1.0, dtype=np.float32)
        pos = 0
        for k, n in enumerate(counts):
            if n:
                out[k] = s[pos:pos + n].max()
                pos += n
        return out


def _minmax(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-9:
        return np.ones_like(x) if hi > 0 else np.zeros_like(x)
    return (x - lo) / (hi - lo)


def _zscore(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    sd = float(x.std())
    return (x - float(x.mean())) / sd if sd > 1e-9 else np.zeros_like(x)


def _margin(x: np.ndarray) -> float:
    """How far the best score stands above the second best (0 with fewer than two)."""
    if len(x) < 2:
        return 0.0
    top2 = np.partition(x, len(x) - 2)[-2:]
    return float(top2[1] - top2[0])


def fuse(ids: np.ndarray, dense: np.ndarray, lexical: np.ndarray, dense_weight: float | None = None,
         norm: str | None = None, gap: float | None = None) -> np.ndarray:
    """Fused scores for candidates with both scores: normalised (z-score by default, or min-max)
    weighted sum, the lexical weight moved by the two retrievers' top margins (see module doc)."""
    w = DENSE_WEIGHT if dense_weight is None else dense_weight
    g = FUSION_GAP if gap is None else gap
    f = _zscore if (norm or FUSION_NORM) == "z" else _minmax
    d, lx = f(dense), f(lexical)
    wl = 1.0 - w
    if g:
        wl = min(max(wl * (1.0 + g * (_margin(lx) - _margin(d))), 0.0), max(MAX_LEXICAL_WEIGHT, wl))
    return (1.0 - wl) * d + wl * lx


def _top_ids(ids: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(n, len(ids))
    idx = np.argpartition(-scores, n - 1)[:n]
    return ids[idx][scores[idx] > 0]


def rank(query_vec: np.ndarray | None, query: str, dense: DenseIndex, lexical: LexicalIndex, k: int,
         mode: str = "hybrid", candidates: int = CANDIDATES,
         dense_weight: float | None = None) -> list[tuple[int, float, dict]]:
    """[(chunk id, score, {"dense": .., "lexical": ..}), ...] best first, at most k."""
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode '{mode}' (use one of: {', '.join(MODES)})")
    if k <= 0:
        return []
    if mode == "dense":
        ids, s = dense.search(query_vec, k)
        return [(int(i), float(x), {"dense": float(x)}) for i, x in zip(ids, s)]
    if mode == "lexical":
        ids, s = lexical.top(query, k)
        return [(int(i), float(x), {"lexical": float(x)}) for i, x in zip(ids, s)]
    n = max(candidates, k)
    d_ids, _ = dense.search(query_vec, n)
    all_ids, all_lex = lexical.scores(query)
    l_ids = _top_ids(all_ids, all_lex, n)
    cand = np.unique(np.concatenate([d_ids.astype(np.int64), l_ids.astype(np.int64)]))
    if len(cand) == 0:
        return []
    d_scores = dense.scores_for(query_vec, cand)
    l_scores = LexicalIndex.pick(all_ids, all_lex, cand)
    fused = fuse(cand, d_scores, l_scores, dense_weight)
    order = np.argsort(-fused, kind="stable")[:k]
    return [(int(cand[j]), float(fused[j]), {"dense": float(d_scores[j]), "lexical": float(l_scores[j])})
            for j in order]
