"""rag.search without the model: the in-memory index follows the store's generations (a change is
applied once, in order, and a missed one asks for a reload), fusion reads its settings when called,
and the relevance decision. Real FAISS and BM25; vectors built by hand."""
from __future__ import annotations

import numpy as np
import pytest

from rag.schema import Chunk, Hit, Mode
from rag.search import MIN_DENSE_SCORE, Added, SearchIndex, fuse, is_relevant


def _vec(i: int, dim: int = 4) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def _loaded() -> SearchIndex:
    index = SearchIndex(4)
    # chunk 1 has two views, chunk 2 one
    index.load(5, np.array([1, 2]), np.stack([_vec(0), _vec(1), _vec(2)]), np.array([1, 1, 2]),
               ["descale the kettle with vinegar", "tomatoes need sunlight"])
    return index


def test_apply_follows_the_generations():
    index = SearchIndex(4)
    assert index.generation is None and index.rank(_vec(0), "kettle", 3, Mode.HYBRID) == []
    index = _loaded()
    assert index.generation == 5 and len(index) == 2
    assert [i for i, _, _ in index.rank(_vec(1), "kettle", 3, "dense")][0] == 1  # its second view
    index.apply(6, [1], [Added(np.array([7]), np.array([7]), _vec(3)[None], ["citric acid descales a kettle"])])
    assert index.generation == 6 and len(index) == 2
    assert [i for i, _, _ in index.rank(None, "kettle", 3, Mode.LEXICAL)] == [7]
    index.apply(6, [7], [])  # already held (a reload read it): nothing happens
    assert len(index) == 2 and [i for i, _, _ in index.rank(_vec(3), "kettle", 1, "hybrid")] == [7]
    index.apply(8, [], [])  # generation 7 was written elsewhere: not applied, load again
    assert index.generation is None
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        index.rank(None, "kettle", 3, "nonsense")


def test_fusion_reads_its_settings_when_called(monkeypatch):
    dense = np.array([0.9, 0.1, 0.5], np.float32)
    lexical = np.array([0.0, 5.0, 1.0], np.float32)
    monkeypatch.setenv("LRC_FUSION_GAP", "0")
    monkeypatch.setenv("LRC_DENSE_WEIGHT", "1.0")
    assert np.argmax(fuse(None, dense, lexical)) == 0  # dense alone
    monkeypatch.setenv("LRC_DENSE_WEIGHT", "0.0")
    assert np.argmax(fuse(None, dense, lexical)) == 1  # lexical alone


def test_relevance_uses_the_dense_cosine_where_known():
    chunk = Chunk(id=1, text="x", source="/a.md")

    def hit(**scores) -> Hit:
        return Hit(chunk=chunk, score=next(iter(scores.values())), rank=1, scores=scores)

    assert not is_relevant([], Mode.HYBRID)
    assert is_relevant([hit(dense=MIN_DENSE_SCORE, lexical=0.0)], Mode.HYBRID)
    assert not is_relevant([hit(dense=MIN_DENSE_SCORE - 0.01, lexical=9.0)], "hybrid")
    assert is_relevant([hit(dense=0.05, lexical=9.0)], Mode.LEXICAL)  # lexical mode: BM25 decides
    assert not is_relevant([hit(lexical=0.0)], Mode.LEXICAL)
    assert is_relevant([hit(dense=0.3)], "dense", min_score=0.25) and not is_relevant([hit(dense=0.3)], "dense", 0.4)
