"""The optional cross-encoder stage (rag/search/reranker.py) with real parts: the real library (MiniLM, FAISS,
BM25) and a real sentence-transformers CrossEncoder. No cross-encoder's trained weights are installable
offline, so the model here is a TINY RANDOM-WEIGHT build (BERT, 2 layers, MiniLM's tokenizer): it checks
the plumbing (which candidates it reads, that its order is the one returned), not ranking quality."""
from __future__ import annotations

import numpy as np
import pytest

from .test_library import write_docs

QUESTIONS = ["How often must a Zorblax widget be calibrated?", "What does a reflector telescope use?",
             "How should tomatoes be watered?"]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, embedder):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rag.embedder import resolve_model_path

    d = tmp_path_factory.mktemp("tiny-random-cross-encoder")
    tok = AutoTokenizer.from_pretrained(resolve_model_path(embedder.name))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder):
    from rag.library import Library

    root = tmp_path_factory.mktemp("rerank")
    lib = Library(root / "index", reranker="")
    lib.ingest([write_docs(root / "docs")])
    assert lib.stats().chunks >= 4
    return root / "index"


def test_reranker_reorders_the_fused_candidates(indexed, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    from rag.library import Library

    plain = Library(indexed, reranker="")
    reranked = Library(indexed, reranker=str(tiny_cross_encoder), rerank_depth=6)
    ce = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    moved = 0
    for q in QUESTIONS:
        candidates = plain.search(q, k=6)
        got = reranked.search(q, k=3)
        texts = [h.chunk.matched_text for h in candidates]
        s = ce.predict([(q, t) for t in texts], show_progress_bar=False)
        want = [candidates[j].chunk.id for j in np.argsort(-np.asarray(s), kind="stable")[:3]]
        assert [h.chunk.id for h in got] == want, q
        assert [h.rank for h in got] == [1, 2, 3]
        fused = {h.chunk.id: h.score for h in candidates}
        for h in got:
            assert h.scores["fused"] == pytest.approx(fused[h.chunk.id]) and h.score == pytest.approx(h.scores["rerank"])
            assert "dense" in h.scores and "lexical" in h.scores  # the first stage's scores are kept
        moved += [h.chunk.id for h in got] != [h.chunk.id for h in candidates[:3]]
    assert moved, "the re-ranker never changed the order: it did not take part"
    # without the stage (or asked not to use it) the fused ranking is returned unchanged
    assert [h.chunk.id for h in reranked.search(QUESTIONS[0], k=3, rerank=False)] == \
           [h.chunk.id for h in plain.search(QUESTIONS[0], k=3)]


def test_a_missing_reranker_is_a_clear_error(indexed, tmp_path):
    from rag.library import Library
    from rag.search import RerankerError

    lib = Library(indexed, reranker=str(tmp_path / "no-such-cross-encoder"))
    with pytest.raises(RerankerError, match="LRC_RERANKER") as err:
        lib.search(QUESTIONS[0], k=2)
    assert "no-such-cross-encoder" in str(err.value) and "unset it" in str(err.value)
    broken = tmp_path / "broken-cross-encoder"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(RerankerError, match="could not be loaded"):
        Library(indexed, reranker=str(broken)).search(QUESTIONS[0], k=2)
    assert lib.search(QUESTIONS[0], k=2, rerank=False), "the library still answers without the stage"
