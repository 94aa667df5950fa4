"""The in-process engine against the real SmolLM2-135M-Instruct int8 build (greedy decoding)."""
from __future__ import annotations

import asyncio
import time

import pytest

from engines.base import Engine, Generation, GenerationOptions, PromptTooLong


async def collect(gen) -> str:
    return "".join([piece async for piece in gen])

GROUNDED = [
    {"role": "system", "content": "Answer the question using only the context."},
    {"role": "user", "content": "Context: The Velmora lighthouse was built in 1873. Its first keeper was "
                                "Ingrid Sandvik, who kept the light burning for forty years.\n\n"
                                "Question: Who was the first keeper of the Velmora lighthouse?"},
]


def test_engine_implements_the_interface(smollm2_engine):
    assert isinstance(smollm2_engine, Engine)
    assert isinstance(smollm2_engine.stream(GROUNDED), Generation)


async def test_grounded_answer_streams_with_usage(smollm2_engine):
    gen = smollm2_engine.stream(GROUNDED, GenerationOptions(max_new_tokens=60, temperature=0))
    pieces = [p async for p in gen]
    answer = "".join(pieces)
    assert "Ingrid Sandvik" in answer
    assert len(pieces) >= 3, pieces
    u = gen.usage
    assert u.prompt_tokens == await smollm2_engine.count_tokens(GROUNDED)
    assert 3 <= u.completion_tokens <= 60
    assert u.finish_reason in ("stop", "length")
    assert 0 < u.time_to_first_token < u.total_time
    assert u.tokens_per_second > 0


async def test_context_length_from_genai_config(smollm2_engine):
    assert await smollm2_engine.context_length() == 8192


async def test_cancel_mid_stream_frees_the_worker(smollm2_engine):
    story = [{"role": "user", "content": "Write a very long story about a dragon who learns to bake bread."}]
    gen = smollm2_engine.stream(story, GenerationOptions(max_new_tokens=400))
    got = 0
    async for _ in gen:
        got += 1
        if got == 5:
            await gen.cancel()
    assert gen.usage.finish_reason == "cancelled"
    assert got <= 7  # nothing much arrives after cancel
    # the worker drops the answer at its next step
    deadline = time.monotonic() + 2
    while (await smollm2_engine.worker_status())["active"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await smollm2_engine.worker_status())["active"] == 0
    # and the next request is answered normally
    again = smollm2_engine.stream(GROUNDED, GenerationOptions(max_new_tokens=60))
    assert "Ingrid Sandvik" in await collect(again)
    assert again.usage.finish_reason in ("stop", "length")


async def test_prompt_too_long_is_rejected_before_generating(smollm2_engine):
    long_text = "The quick brown fox jumps over the lazy dog. " * 900  # ~9,000 tokens > 8,192
    gen = smollm2_engine.stream([{"role": "user", "content": long_text}], GenerationOptions(max_new_tokens=50))
    pieces = []
    with pytest.raises(PromptTooLong) as info:
        async for p in gen:
            pieces.append(p)
    assert pieces == []
    err = info.value
    assert err.context_length == 8192 and err.prompt_tokens > 8192
    assert "8192" in str(err) and str(err.prompt_tokens) in str(err)


async def test_prompt_plus_budget_over_context_is_rejected(smollm2_engine):
    text = "The quick brown fox jumps over the lazy dog. " * 780  # fits alone, not with a 1,000-token budget
    messages = [{"role": "user", "content": text}]
    n = await smollm2_engine.count_tokens(messages)
    assert n < 8192 < n + 1000
    with pytest.raises(PromptTooLong) as info:
        await collect(smollm2_engine.stream(messages, GenerationOptions(max_new_tokens=1000)))
    assert info.value.prompt_tokens == n


async def test_two_concurrent_streams_interleave_and_differ(smollm2_engine):
    a = smollm2_engine.stream([{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
                              GenerationOptions(max_new_tokens=40))
    b = smollm2_engine.stream([{"role": "user", "content": "Which planet is the largest in the solar system?"}],
                              GenerationOptions(max_new_tokens=40))
    order: list[str] = []

    async def run(name, gen):
        parts = []
        async for p in gen:
            order.append(name)
            parts.append(p)
        return "".join(parts)

    ans_a, ans_b = await asyncio.gather(run("a", a), run("b", b))
    assert "Paris" in ans_a and "Jupiter" in ans_b
    assert ans_a != ans_b
    assert a.usage.finish_reason in ("stop", "length") and b.usage.finish_reason in ("stop", "length")
    # both progressed at the same time: b's pieces started before a finished
    assert order.index("b") < len(order) - 1 - order[::-1].index("a")
