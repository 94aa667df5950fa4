"""The answer's steps hand each other values (issue 25, item 2): ``prepare`` yields a frozen ``Prepared``
last (none when the answer ended), ``generate`` yields what it made (its own text and timings, never a
dict shared with another routing attempt), and ``Done`` carries the quote and the answer separately.
Real parts: a real Library (MiniLM + FAISS + BM25) and the real in-process engine (the tiny model)."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from rag import pipeline as pl
from rag.answering import Generated, finish_answer, generate

pytestmark = pytest.mark.slow
QUESTION = "How do I calibrate a Zorblax widget?"


def opts(**kw) -> pl.Options:
    return pl.Options(**{**dict(engine="onnx", model="tiny", top_k=2, temperature=0.0, max_new_tokens=24), **kw})


async def _prepared(question: str, options: pl.Options, lib) -> tuple[list, pl.Prepared | None]:
    events, prep = [], None
    async for item in pl.prepare(question, [], options, lib=lib):
        assert prep is None, "the Prepared comes last"
        if isinstance(item, pl.Prepared):
            prep = item
        else:
            events.append(item)
    return events, prep


async def test_prepare_yields_a_frozen_prepared_last_or_none_when_the_answer_ended(zorblax_library):
    events, prep = await _prepared(QUESTION, opts(), zorblax_library)
    assert isinstance(prep, pl.Prepared) and prep.passages and prep.quote.startswith("> ")
    assert prep.embedder is zorblax_library.embedder
    quoted = next(e for e in events if isinstance(e, pl.Quoted))
    assert prep.quote == quoted.text and set(prep.timings) == {"retrieval", "first_text"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        prep.quote = ""  # nobody changes it
    for question, options in (("What is the capital of the planet Zorgon-9?", opts()), (QUESTION, opts(style="quote")),
                              ("", opts())):
        events, none = await _prepared(question, options, zorblax_library)
        assert none is None and events, (question, events)  # nothing found / quote only / empty: ended here


async def test_the_model_reads_at_most_lrc_context_tokens_of_passage_text(zorblax_library, monkeypatch):
    """LRC_CONTEXT_TOKENS (estimated at 3.5 characters a token) bounds the passage text the model reads; the
    /browser page's budget is half of it."""
    from rag.browser.context import context_tokens

    sizes = {}
    for budget in ("60", "1400"):
        monkeypatch.setenv("LRC_CONTEXT_TOKENS", budget)
        _, prep = await _prepared(QUESTION, opts(top_k=4), zorblax_library)
        sizes[budget] = sum(len(h.chunk.text) for h in prep.passages)
    assert 0 < sizes["60"] < sizes["1400"], sizes
    assert sizes["60"] <= 3.5 * 60 + 200, sizes  # the best sentence and its neighbours come first, whatever they cost
    assert context_tokens() == 700


async def test_each_generation_keeps_its_own_timings_and_done_composes_them(zorblax_library, tiny_model_dir):
    """Two generations from one Prepared at once (what routing does when it starts the next target
    early): each yields its own Generated; neither adds into the other's timings nor the Prepared's."""
    _, prep = await _prepared(QUESTION, opts(), zorblax_library)
    before = dict(prep.timings)
    eng, control = pl.engine("onnx"), pl.Control()

    async def one() -> tuple[Generated, float]:
        made, t0 = None, asyncio.get_running_loop().time()
        async for item in generate(eng, "tiny", prep, opts(), control):
            if isinstance(item, Generated):
                made = item
        return made, asyncio.get_running_loop().time() - t0

    (a, wall_a), (b, wall_b) = await asyncio.gather(one(), one())
    assert a.text and b.text and a.timings is not b.timings
    assert set(a.timings) == set(b.timings) == {"prompt", "generation"}
    assert a.timings["prompt"] + a.timings["generation"] <= wall_a + 0.01
    assert b.timings["prompt"] + b.timings["generation"] <= wall_b + 0.01
    assert prep.timings == before, "the Prepared's timings are not written to"
    done = [ev async for ev in finish_answer(prep, control, eng, "tiny", b)][-1]
    assert isinstance(done, pl.Done)
    assert {k: done.timings[k] for k in ("retrieval", "first_text")} == before
    assert {k: done.timings[k] for k in ("prompt", "generation")} == b.timings, "the attempt that answered"
    assert done.timings["total"] >= before["first_text"]


async def test_done_carries_the_quote_and_the_answer_apart(zorblax_library, tiny_model_dir):
    events = [ev async for ev in pl.answer(QUESTION, [], opts(), lib=zorblax_library)]
    done, quoted = events[-1], next(e for e in events if isinstance(e, pl.Quoted))
    revised = next((e for e in events if isinstance(e, pl.Revised)), None)
    assert isinstance(done, pl.Done), events
    assert done.quote == quoted.text and not done.answer.startswith("> ")
    assert done.answer == (revised.text if revised else done.answer) and done.answer.strip()
    assert done.text == f"{done.quote}\n\n{done.answer}", "text: what the user reads, quote then answer"
    quote_only = [ev async for ev in pl.answer(QUESTION, [], opts(style="quote"), lib=zorblax_library)][-1]
    assert quote_only.quote == quoted.text and quote_only.answer == "" and quote_only.text == quoted.text
