"""Question -> ranked chunk ids: dense (rag.search.dense), lexical (rag.search.lexical) or both fused.

Fusion: the candidates are the union of the top ``CANDIDATES`` of each retriever; every candidate
gets BOTH scores (the dense score is computed exactly from its stored vector, the BM25 score from
the full score vector), each is normalised over the candidates (z-score by default, min-max
selectable), and the fused score is ``(1 - wl) * dense + wl * lexical``. Unlike reciprocal-rank
fusion this keeps the retrievers' score margins, so a weak lexical ranking cannot push a clear
dense winner down (measured: RRF < dense alone on pyfaq).

The lexical weight ``wl`` starts at ``1 - dense_weight`` and follows each retriever's confidence
in this query: the margin of its best candidate over its second (in normalised units). A retriever
that singles one passage out gets more say than one whose top candidates are tied:
``wl = (1 - dense_weight) * (1 + fusion_gap * (gap_lexical - gap_dense))``, kept within [0, 0.5].
Both are settings (``LRC_DENSE_WEIGHT``, ``LRC_FUSION_GAP``, ``LRC_FUSION_NORM``), read at each call;
the defaults are the chat's.
"""
from __future__ import annotations

import numpy as np

from rag.config import settings
from rag.schema import Mode
from rag.search.dense import DenseIndex
from rag.search.lexical import LexicalIndex

CANDIDATES = 100
MAX_LEXICAL_WEIGHT = 0.5


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
    s = settings()
    w = s.dense_weight if dense_weight is None else dense_weight
    g = s.fusion_gap if gap is None else gap
    f = _zscore if (norm or s.fusion_norm) == "z" else _minmax
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
         mode: Mode | str = Mode.HYBRID, candidates: int = CANDIDATES,
         dense_weight: float | None = None, allowed: np.ndarray | None = None) -> list[tuple[int, float, dict]]:
    """[(chunk id, score, {"dense": .., "lexical": ..}), ...] best first, at most k. ``allowed``: rank
    only these chunk ids (a chat's own files), scored exactly, the same way in every mode."""
    mode = Mode.parse(mode, search_only=True)
    if k <= 0:
        return []
    if allowed is not None:
        return _rank_within(np.unique(np.asarray(allowed, dtype=np.int64)), query_vec, query, dense, lexical, k,
                            mode, candidates, dense_weight)
    if mode == Mode.DENSE:
        ids, s = dense.search(query_vec, k)
        return [(int(i), float(x), {"dense": float(x)}) for i, x in zip(ids, s)]
    if mode == Mode.LEXICAL:
        ids, s = lexical.top(query, k)
        return [(int(i), float(x), {"lexical": float(x)}) for i, x in zip(ids, s)]
    n = max(candidates, k)
    d_ids, _ = dense.search(query_vec, n)
    all_ids, all_lex = lexical.scores(query)
    l_ids = _top_ids(all_ids, all_lex, n)
    cand = np.unique(np.concatenate([d_ids.astype(np.int64), l_ids.astype(np.int64)]))
    if len(cand) == 0:
        return []
    return fused_top(cand, dense.scores_for(query_vec, cand), LexicalIndex.pick(all_ids, all_lex, cand), k,
                     dense_weight)


def fused_top(cand: np.ndarray, d_scores: np.ndarray, l_scores: np.ndarray, k: int,
              dense_weight: float | None = None) -> list[tuple[int, float, dict]]:
    """The hybrid ranking of candidates that carry both scores: ``fuse``, best first, at most k. The one
    place the fused list is made (the PostgreSQL backend hands in candidates scored in SQL)."""
    fused = fuse(cand, d_scores, l_scores, dense_weight)
    order = np.argsort(-fused, kind="stable")[:k]
    return [(int(cand[j]), float(fused[j]), {"dense": float(d_scores[j]), "lexical": float(l_scores[j])})
            for j in order]


def _rank_within(allowed: np.ndarray, query_vec, query: str, dense: DenseIndex, lexical: LexicalIndex, k: int,
                 mode: Mode, candidates: int, dense_weight: float | None) -> list[tuple[int, float, dict]]:
    """``rank`` over the ``allowed`` chunks only: their dense scores computed directly (no index search),
    their BM25 scores picked from the full score vector; hybrid fuses the top ``candidates`` of each."""
    if len(allowed) == 0:
        return []
    d_all = dense.scores_for(query_vec, allowed) if mode != Mode.LEXICAL else None
    all_ids, all_lex = lexical.scores(query) if mode != Mode.DENSE else (None, None)
    l_all = LexicalIndex.pick(all_ids, all_lex, allowed) if all_ids is not None else None
    return rank_scored(allowed, d_all, l_all, k, mode, candidates, dense_weight)


def rank_scored(ids: np.ndarray, d_all: np.ndarray | None, l_all: np.ndarray | None, k: int, mode: Mode | str,
                candidates: int = CANDIDATES, dense_weight: float | None = None) -> list[tuple[int, float, dict]]:
    """The ranking of chunks whose scores are all known (a scope: every allowed chunk scored exactly):
    dense or lexical by score, hybrid fusing the top ``candidates`` of each side."""
    mode = Mode.parse(mode, search_only=True)
    if len(ids) == 0 or k <= 0:
        return []
    if mode == Mode.DENSE:
        order = np.argsort(-d_all, kind="stable")[:k]
        return [(int(ids[j]), float(d_all[j]), {"dense": float(d_all[j])}) for j in order]
    if mode == Mode.LEXICAL:
        order = [j for j in np.argsort(-l_all, kind="stable")[:k] if l_all[j] > 0]
        return [(int(ids[j]), float(l_all[j]), {"lexical": float(l_all[j])}) for j in order]
    n = max(candidates, k)
    pick = np.unique(np.concatenate([np.argsort(-d_all, kind="stable")[:n], np.argsort(-l_all, kind="stable")[:n]]))
    return fused_top(ids[pick], d_all[pick], l_all[pick], k, dense_weight)
