"""The in-process engine against the real SmolLM2-135M-Instruct int8 build (greedy decoding)."""
from __future__ import annotations

import asyncio
import time

import psutil
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
    assert gen.usage.completion_tokens == got, "a stopped answer still counts the tokens it wrote"
    assert gen.usage.tokens_per_second > 0
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


async def test_two_concurrent_streams_both_finish_and_differ(smollm2_engine):
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
    assert order.count("a") >= 3 and order.count("b") >= 3  # (interleaving: see the next tests)


def records_prompt(n: int = 55) -> list[dict]:
    facts = [f"Record {i}: the warehouse in district {i % 17} stores {i * 37 % 101} crates of "
             f"{['apples', 'copper', 'paper', 'glass', 'salt'][i % 5]}, checked on day {i % 28 + 1}." for i in range(n)]
    return [{"role": "user", "content": "\n".join(facts) + "\n\nQuestion: what does record 12 store?"}]


def worker_cpu(engine) -> float:
    """CPU seconds the engine's worker process has used."""
    times = psutil.Process(engine.worker_pid).cpu_times()
    return times.user + times.system


async def test_cancel_during_prompt_processing(smollm2_engine):
    """A count and a cancel are handled between two prompt chunks (128 tokens), not after the whole prompt.
    Measured in the worker's CPU seconds, which other test workers sharing the cores do not stretch: the
    whole prompt costs several seconds of it, a chunk a fraction of one."""
    messages = records_prompt()
    assert await smollm2_engine.count_tokens(messages) > 1200
    gen = smollm2_engine.stream(messages, GenerationOptions(max_new_tokens=50))
    task = asyncio.create_task(collect(gen))
    await asyncio.sleep(0.5)  # the worker is busy with the prompt (several seconds of work)
    cpu = worker_cpu(smollm2_engine)
    assert await smollm2_engine.count_tokens(GROUNDED) > 20  # answered between two prompt chunks
    assert worker_cpu(smollm2_engine) - cpu < 1.0
    await gen.cancel()
    assert await task == "" and gen.usage.finish_reason == "cancelled"
    start, cpu = time.monotonic(), worker_cpu(smollm2_engine)
    while (await smollm2_engine.worker_status())["active"] and time.monotonic() - start < 30:
        await asyncio.sleep(0.02)
    assert (await smollm2_engine.worker_status())["active"] == 0
    assert worker_cpu(smollm2_engine) - cpu < 1.0  # dropped after the current prompt chunk, not the whole prompt


async def test_short_answer_keeps_streaming_during_a_long_prompt(smollm2_engine):
    """Time-sliced interleaving: a chat that is answering is not starved by another's long prompt."""
    long_gen = smollm2_engine.stream(records_prompt(), GenerationOptions(max_new_tokens=5))
    short_gen = smollm2_engine.stream([{"role": "user", "content": "Write a long poem about the sea."}],
                                      GenerationOptions(max_new_tokens=80))
    events: list[str] = []

    async def run(name, gen):
        async for _ in gen:
            events.append(name)

    await asyncio.gather(run("long", long_gen), run("short", short_gen))
    before_long = events.index("long")
    assert events[:before_long].count("short") >= 25, events
    assert long_gen.usage.finish_reason in ("stop", "length") and short_gen.usage.completion_tokens >= 25
