"""Engine plumbing with the tiny random-weight model (fast; its answers are gibberish by design)."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from engines.base import GenerationFailed, GenerationOptions, ModelNotFound
from engines.onnx.engine import OnnxGenaiEngine


async def collect(gen) -> str:
    return "".join([piece async for piece in gen])

HELLO = [{"role": "user", "content": "Hello, who are you?"}]


async def test_lists_models_with_context(tiny_engine, tiny_model_dir):
    models = await tiny_engine.list_models()
    tiny = [m for m in models if m.path == str(tiny_model_dir)]
    assert tiny and tiny[0].engine == "onnx" and tiny[0].context_length == 8192


async def test_count_tokens_is_exact(tiny_engine):
    gen = tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=5))
    await collect(gen)
    assert gen.usage.prompt_tokens == await tiny_engine.count_tokens(HELLO)
    longer = [{"role": "user", "content": "Hello, who are you? " * 10}]
    assert await tiny_engine.count_tokens(longer) > await tiny_engine.count_tokens(HELLO) + 30


async def test_budget_and_greedy_determinism(tiny_engine):
    first = tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=25))
    text1 = await collect(first)
    text2 = await collect(tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=25)))
    assert text1 == text2 and text1.strip()
    assert first.usage.completion_tokens == 25 and first.usage.finish_reason == "length"


async def test_stop_string_ends_the_answer(tiny_engine):
    full = await collect(tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=40)))
    stop = full[len(full) // 2: len(full) // 2 + 4]
    assert len(stop) == 4 and full.index(stop) > 0
    gen = tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=40, stop=["zzzq-never", stop]))
    text = await collect(gen)
    assert text == full[:full.index(stop)]
    assert gen.usage.finish_reason == "stop"


async def test_sampling_with_seed_is_reproducible(tiny_engine):
    opts = GenerationOptions(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7)
    a = await collect(tiny_engine.stream(HELLO, opts))
    b = await collect(tiny_engine.stream(HELLO, opts))
    greedy = await collect(tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=20)))
    assert a == b and a != greedy


async def test_many_concurrent_answers_do_not_mix(tiny_engine):
    topics = ["volcanoes", "the history of tea", "how magnets work", "jazz", "Roman roads", "bees"]
    prompts = [[{"role": "user", "content": f"Explain {t}."}] for t in topics]  # more than max_active
    opts = GenerationOptions(max_new_tokens=15)
    alone = [await collect(tiny_engine.stream(p, opts)) for p in prompts]
    together = await asyncio.gather(*(collect(tiny_engine.stream(p, opts)) for p in prompts))
    assert list(together) == alone
    assert len(set(alone)) == len(alone)


@pytest.mark.parametrize("messages, options, words", [
    ([], GenerationOptions(), "No messages"),
    ([{"role": "robot", "content": "hi"}], GenerationOptions(), "not a valid chat message"),
    ([{"role": "user", "content": None}], GenerationOptions(), "not a valid chat message"),
    (HELLO, GenerationOptions(max_new_tokens=0), "max_new_tokens"),
    (HELLO, GenerationOptions(top_p=0), "top_p"),
])
async def test_bad_input_is_a_typed_error(tiny_engine, messages, options, words):
    with pytest.raises(GenerationFailed, match=words):
        await collect(tiny_engine.stream(messages, options))


async def test_unknown_model_names_the_fix(tiny_engine):
    with pytest.raises(ModelNotFound) as info:
        await collect(tiny_engine.stream(HELLO, model="no-such-model"))
    assert "no-such-model" in info.value.user_text() and "LRC_MODELS" in info.value.user_text()


async def test_cancel_before_start_and_abandoned_answer(tiny_engine):
    gen = tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=5))
    await gen.cancel()
    assert await collect(gen) == "" and gen.usage.finish_reason == "cancelled"
    # an answer whose reader walks away is dropped by the worker
    gen = tiny_engine.stream(HELLO, GenerationOptions(max_new_tokens=3000))
    async for _ in gen:
        break
    del gen
    deadline = time.monotonic() + 3
    while (await tiny_engine.worker_status())["active"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await tiny_engine.worker_status())["active"] == 0


async def test_dead_worker_fails_the_answer_then_restarts(tiny_model_dir):
    engine = OnnxGenaiEngine(default_model=str(tiny_model_dir))
    try:
        gen = engine.stream(HELLO, GenerationOptions(max_new_tokens=3000))
        pid = None
        with pytest.raises(GenerationFailed, match="stopped unexpectedly.*signal 9"):
            async for _ in gen:
                if pid is None:
                    pid = engine.worker_pid
                    os.kill(pid, signal.SIGKILL)  # a real crash of the worker process
        assert gen.usage.finish_reason == "error"
        text = await collect(engine.stream(HELLO, GenerationOptions(max_new_tokens=5)))
        assert text.strip() and engine.worker_pid not in (None, pid)
    finally:
        await engine.aclose()
    assert engine.worker_pid is None


def test_engine_survives_a_new_event_loop(tiny_model_dir):
    engine = OnnxGenaiEngine(default_model=str(tiny_model_dir))
    opts = GenerationOptions(max_new_tokens=8)
    first = asyncio.run(collect(engine.stream(HELLO, opts)))

    async def second_loop():
        try:
            return await collect(engine.stream(HELLO, opts))
        finally:
            await engine.aclose()

    assert asyncio.run(second_loop()) == first and first.strip()


async def test_the_worker_runs_at_the_niceness_it_is_given(tiny_model_dir):
    """LRC_ENGINE_NICE (settings().engine_config): the generation process lowers its own priority, so the
    server's retrieval and quotes go first when they want the same cores; it still answers."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    engine = OnnxGenaiEngine(default_model=str(tiny_model_dir), nice=3)
    try:
        text = await collect(engine.stream(HELLO, GenerationOptions(max_new_tokens=5)))
        with open(f"/proc/{engine.worker_pid}/stat") as fh:
            niceness = int(fh.read().rsplit(")", 1)[1].split()[16])  # field 19 of the whole line
        assert text.strip() and niceness == min(base + 3, 19), (niceness, base)
    finally:
        await engine.aclose()


async def test_the_worker_runs_the_model_on_the_threads_it_is_given(tiny_model_dir):
    """LRC_ENGINE_THREADS (settings().engine_config; default: the machine's cores): ONNX Runtime's pool for the
    model holds one thread fewer than asked (the calling thread is the other), so two threads make the worker
    one thread more than one does; both answer the same."""
    counts, texts = {}, {}
    for threads in (1, 2):
        engine = OnnxGenaiEngine(default_model=str(tiny_model_dir), threads=threads)
        try:
            texts[threads] = await collect(engine.stream(HELLO, GenerationOptions(max_new_tokens=8)))
            with open(f"/proc/{engine.worker_pid}/status") as fh:
                counts[threads] = int(next(line for line in fh if line.startswith("Threads:")).split()[1])
        finally:
            await engine.aclose()
    assert counts[2] == counts[1] + 1, counts
    assert texts[1] == texts[2] and texts[1].strip()
