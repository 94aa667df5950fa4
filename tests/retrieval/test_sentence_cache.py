"""rag.embedder.Embedder.encode_sentences: the passages' sentences are encoded once for the quote, the check
and the next questions that retrieve them (LRC_SENTENCE_CACHE), with the real embedder."""
from __future__ import annotations

import uuid

import numpy as np

from rag.embedder import MIXED_BATCH


def _counting(embedder, monkeypatch) -> list[list[str]]:
    """Every batch the real ``encode`` is given (it still encodes)."""
    seen: list[list[str]] = []
    real = embedder.encode

    def encode(texts, *args, **kwargs):
        seen.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embedder, "encode", encode)
    return seen


def _sentences(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]  # not in the process-wide cache yet
    return [f"Sentence {i} about the {tag} lighthouse keeper's {i * 7} lamps." for i in range(n)]


def test_sentences_are_encoded_once_then_read_from_the_cache(embedder, monkeypatch):
    monkeypatch.setenv("LRC_SENTENCE_CACHE", "1000")
    texts = _sentences(5)
    expected = embedder.encode(texts, batch_size=MIXED_BATCH)
    seen = _counting(embedder, monkeypatch)
    first = embedder.encode_sentences(texts + texts[:1])  # a repeat within the call is encoded once
    assert seen == [texts]
    assert np.allclose(first[:5], expected, atol=1e-5) and np.array_equal(first[5], first[0])
    new = _sentences(1)
    second = embedder.encode_sentences(texts[2:] + new)
    assert seen == [texts, new]  # only the new sentence
    assert np.array_equal(second[:3], first[2:5]) and second.shape == (4, embedder.dim)
    assert embedder.encode_sentences([]).shape == (0, embedder.dim)


def test_the_cache_keeps_the_newest_and_zero_turns_it_off(embedder, monkeypatch):
    seen = _counting(embedder, monkeypatch)
    monkeypatch.setenv("LRC_SENTENCE_CACHE", "3")
    texts = _sentences(4)
    embedder.encode_sentences(texts)
    assert len(embedder._sentences) == 3 and list(embedder._sentences)[-3:] == texts[1:]
    embedder.encode_sentences(texts[1:])
    assert seen == [texts]  # the three newest came from the cache
    embedder.encode_sentences(texts[:1])
    assert seen == [texts, texts[:1]]  # the oldest had gone
    monkeypatch.setenv("LRC_SENTENCE_CACHE", "0")
    embedder.encode_sentences(texts[:1])
    assert seen[-1] == texts[:1] and len(seen) == 3  # encoded again: no cache
