"""A follow-up question ("and how do I undo it?") made into a query that retrieval can use alone.

The small model cannot be trusted to rewrite a question (it loops or answers instead), so the
conversation is combined without it: the earlier user turn(s) and, optionally, the answer, put in
front of the new question, for both the dense and the lexical side. The method was chosen by
measurement (docs/BENCHMARKS.md, "Follow-up questions"); the others stay selectable for the bench.
"""
from __future__ import annotations

import re
from typing import Sequence

METHODS = ("question", "previous-question", "previous-turn")
DEFAULT_METHOD = "previous-question"
_WORD = re.compile(r"\w+")


def standalone_query(question: str, history: Sequence[dict] | None, method: str = DEFAULT_METHOD,
                     max_answer_words: int = 40) -> str:
    """The query to retrieve with. ``question``: the question alone; ``previous-question``: the last
    earlier user question, then this one; ``previous-turn``: the same plus the start of the answer."""
    if method not in METHODS:
        raise ValueError(f"unknown follow-up method '{method}' (use one of: {', '.join(METHODS)})")
    question = (question or "").strip()
    turns = [m for m in (history or []) if m.get("role") in ("user", "assistant") and str(m.get("content", "")).strip()]
    if method == "question" or not turns:
        return question
    users = [i for i, m in enumerate(turns) if m["role"] == "user"]
    if not users:
        return question
    last = users[-1]
    parts = [str(turns[last]["content"]).strip()]
    if method == "previous-turn":
        answers = [m for m in turns[last + 1:] if m["role"] == "assistant"]
        if answers:
            words = _WORD.findall(str(answers[0]["content"]))
            parts.append(" ".join(words[:max_answer_words]))
    parts.append(question)
    return " ".join(parts)
