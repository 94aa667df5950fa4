"""Is what search found worth answering from? The decision the pipeline asks for."""
from __future__ import annotations

from typing import Sequence

from rag.schema import Hit, Mode

# Cosine similarity (all-MiniLM-L6-v2) below which a passage is not about the question at all.
MIN_DENSE_SCORE = 0.2


def is_relevant(hits: Sequence[Hit], mode: Mode | str, min_score: float = MIN_DENSE_SCORE) -> bool:
    """Does any hit look related to the question? Dense cosine decides where it is known;
    lexical-only results count when they have a positive score."""
    if not hits:
        return False
    dense = [h.scores["dense"] for h in hits if "dense" in (h.scores or {})]
    if dense and mode != Mode.LEXICAL:
        return max(dense) >= min_score
    return max((h.scores or {}).get("lexical", h.score) for h in hits) > 0  # not a re-ranker's score
