"""Compare mode and the "auto" engine with real parts: the real library (tests/conftest.py's
zorblax_library), the real in-process engine with two real models (SmolLM2-135M int8 and the tiny
random-weight build), real routing rules files. Faults that need a service (Foundry Local stopped,
killed mid-answer, a slow first token) are in tests/foundry/test_routing_faults.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag import pipeline as pl
from rag.compare import Side, Verdict, compare, parse_choice, verdict

pytestmark = pytest.mark.slow
QUESTION = "How do I calibrate a Zorblax widget?"


def opts(**kw) -> pl.Options:
    base = dict(engine="onnx", model="smollm2", top_k=2, mode="hybrid", temperature=0.0, max_new_tokens=48)
    base.update(kw)
    return pl.Options(**base)


def rules(tmp_path: Path, monkeypatch, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    monkeypatch.setenv("LRC_ROUTING", str(path))
    return path


async def collect(question, options, lib, history=None) -> list:
    return [ev async for ev in pl.answer(question, history or [], options, lib=lib)]


# ------------------------------------------------------------------------------------ compare
async def test_two_models_answer_at_once_from_the_same_passages(zorblax_library, smollm2_dir, tiny_model_dir):
    events = [ev async for ev in compare(QUESTION, [], opts(), opts(model="tiny"), lib=zorblax_library)]
    assert sum(isinstance(e, pl.Retrieved) for e in events) == 1, "retrieval runs once for both"
    assert sum(isinstance(e, pl.Quoted) for e in events) == 1, "the quote is shown once"
    sides = [e for e in events if isinstance(e, Side)]
    assert {e.side for e in sides if isinstance(e.event, pl.Token)} == {"A", "B"}
    done = {e.side: e.event for e in sides if isinstance(e.event, pl.Done)}
    sources = {e.side: e.event for e in sides if isinstance(e.event, pl.Sources)}
    assert "smollm2" in done["A"].model and "tiny" in done["B"].model
    assert done["A"].engine == done["B"].engine == "onnx"
    assert sources["A"].used and sources["A"].used == sources["B"].used, "both read the same passages"
    assert all(d.usage.completion_tokens > 0 and d.usage.time_to_first_token for d in done.values())
    last = events[-1]
    assert isinstance(last, Verdict) and "answer tokens" in last.text and "cited" in last.text, last
    assert f"{done['A'].usage.completion_tokens} vs {done['B'].usage.completion_tokens} answer tokens" in last.text


async def test_both_answers_stream_at_the_same_time(zorblax_library, smollm2_dir):
    """The same model twice (greedy): the tokens of A and B interleave, and both say the same."""
    events = [ev async for ev in compare(QUESTION, [], opts(), opts(), lib=zorblax_library)]
    sides = [e for e in events if isinstance(e, Side)]
    order = [e.side for e in sides if isinstance(e.event, pl.Token)]
    # each side's first token came before the other's last one: not one answer after the other
    assert order.index("B") < len(order) - 1 - order[::-1].index("A"), order
    assert order.index("A") < len(order) - 1 - order[::-1].index("B"), order
    text = {s: "".join(e.event.text for e in sides if e.side == s and isinstance(e.event, pl.Token)) for s in "AB"}
    assert text["A"] and text["A"] == text["B"]


async def test_compare_with_an_engine_that_cannot_answer_keeps_the_other_answer(zorblax_library, smollm2_dir):
    events = [ev async for ev in compare(QUESTION, [], opts(), opts(model="no-such-model"), lib=zorblax_library)]
    sides = [e for e in events if isinstance(e, Side)]
    assert any(e.side == "A" and isinstance(e.event, pl.Done) for e in sides)
    failed = [e.event for e in sides if e.side == "B" and isinstance(e.event, pl.Failed)]
    assert failed and "no-such-model" in failed[0].text
    assert events[-1].text.startswith("Only A answered"), events[-1].text


def test_parse_choice_and_verdict_without_answers():
    assert parse_choice("onnx:smollm2", ["onnx", "foundry"]) == ("onnx", "smollm2")
    assert parse_choice("foundry", ["onnx", "foundry"]) == ("foundry", "")
    with pytest.raises(ValueError, match="onnx, foundry"):
        parse_choice("ollama:llama3", ["onnx", "foundry"])
    from rag.compare import Outcome

    assert verdict(Outcome(), Outcome()).startswith("Neither answered")


# ------------------------------------------------------------------------------------ routing
TWO_TARGETS = """
[[target]]
name = "small"
engine = "onnx"
model = "tiny"
context_length = 300

[[target]]
name = "large"
engine = "onnx"
model = "smollm2"
"""


async def test_auto_routes_a_prompt_too_long_for_the_first_target_by_context(zorblax_library, tmp_path, monkeypatch,
                                                                              smollm2_dir, tiny_model_dir):
    rules(tmp_path, monkeypatch, TWO_TARGETS)
    events = await collect(QUESTION, opts(engine="auto"), zorblax_library)
    routed = [e for e in events if isinstance(e, pl.Routed)]
    assert len(routed) == 1, events
    assert "smollm2" in routed[0].target and routed[0].engine == "onnx"
    assert "context 300 < prompt" in routed[0].reason and "In-process tiny" in routed[0].reason, routed[0].reason
    first_token = next(i for i, e in enumerate(events) if isinstance(e, pl.Token))
    assert events.index(routed[0]) < first_token, "the reason line comes before the answer"
    done = events[-1]
    assert isinstance(done, pl.Done) and "smollm2" in done.model
    assert not any(isinstance(e, (pl.Failed, pl.FellBack)) for e in events)


async def test_auto_answers_with_the_first_target_that_fits_and_says_so(zorblax_library, tmp_path, monkeypatch,
                                                                       tiny_model_dir):
    rules(tmp_path, monkeypatch, TWO_TARGETS.replace("context_length = 300", ""))
    events = await collect(QUESTION, opts(engine="auto", max_new_tokens=16), zorblax_library)
    routed = next(e for e in events if isinstance(e, pl.Routed))
    assert "tiny" in routed.target and routed.reason == "first target in rules.toml", routed
    assert routed.text.startswith("answered by In-process tiny")


async def test_auto_sends_a_code_question_to_the_coder_target(zorblax_library, tmp_path, monkeypatch, smollm2_dir,
                                                              tiny_model_dir):
    rules(tmp_path, monkeypatch, TWO_TARGETS.replace("context_length = 300", "") + """
[[route]]
when = "code"
to = "large"
""")
    events = await collect("Why does `calibrate(widget, dial=42)` fail on my Zorblax widget?",
                           opts(engine="auto", max_new_tokens=16), zorblax_library)
    routed = next(e for e in events if isinstance(e, pl.Routed))
    assert "smollm2" in routed.target and "holds code" in routed.reason, routed


async def test_a_target_that_cannot_be_used_is_skipped_with_its_reason(zorblax_library, tmp_path, monkeypatch,
                                                                      tiny_model_dir):
    rules(tmp_path, monkeypatch, """
[[target]]
engine = "onnx"
model = "no-such-model"

[[target]]
engine = "onnx"
model = "tiny"
""")
    events = await collect(QUESTION, opts(engine="auto", max_new_tokens=16), zorblax_library)
    routed = next(e for e in events if isinstance(e, pl.Routed))
    assert "tiny" in routed.target and "no-such-model" in routed.reason, routed
    assert isinstance(events[-1], pl.Done)


async def test_no_target_can_answer_is_one_readable_failure(zorblax_library, tmp_path, monkeypatch):
    path = rules(tmp_path, monkeypatch, '[[target]]\nengine = "onnx"\nmodel = "no-such-model"\n')
    events = await collect(QUESTION, opts(engine="auto"), zorblax_library)
    failed = events[-1]
    assert isinstance(failed, pl.Failed) and failed.category is pl.ErrorCategory.UNAVAILABLE
    assert "no-such-model" in failed.error and str(path) in failed.hint


async def test_a_bad_rules_file_names_the_line_and_the_default_engine_answers(zorblax_library, tmp_path,
                                                                             monkeypatch, tiny_model_dir):
    rules(tmp_path, monkeypatch, '[[target]]\nengine = "onnx"\nmodle = "tiny"\n')
    events = await collect(QUESTION, opts(engine="auto", max_new_tokens=16), zorblax_library)
    notes = [e.text for e in events if isinstance(e, pl.Notice)]
    assert any("line 3" in n and "modle" in n and "default engine" in n for n in notes), notes
    assert isinstance(events[-1], pl.Done) and events[-1].engine == "onnx"
