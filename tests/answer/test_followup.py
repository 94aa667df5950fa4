"""A follow-up question is made into a standalone retrieval query from the conversation."""
from __future__ import annotations

import pytest

from rag.answer.followup import standalone_query

HISTORY = [{"role": "user", "content": "How do I build R as a shared library?"},
           {"role": "assistant", "content": "Configure with --enable-R-shlib and run make."}]


def test_previous_question_comes_before_the_follow_up():
    q = standalone_query("And on macOS?", HISTORY)
    assert q == "How do I build R as a shared library? And on macOS?"


def test_previous_turn_adds_the_start_of_the_answer():
    q = standalone_query("And on macOS?", HISTORY, method="previous-turn")
    assert "enable R shlib" in q and q.endswith("And on macOS?")


def test_without_history_the_question_is_the_query():
    assert standalone_query("What is R_HOME?", []) == "What is R_HOME?"
    assert standalone_query("What is R_HOME?", HISTORY, method="question") == "What is R_HOME?"


def test_an_unknown_method_is_a_readable_error():
    with pytest.raises(ValueError, match="use one of"):
        standalone_query("x", HISTORY, method="magic")
