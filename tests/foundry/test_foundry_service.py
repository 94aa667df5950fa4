"""The Foundry engine against a real Foundry Local service (scripts/foundry_local.py + SmolLM2)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from engines.base import (EngineUnavailable, GenerationOptions, ModelNotFound, ModelNotLoaded,
                          PromptTooLong, StreamBroken)
from engines.foundry.engine import FoundryEngine
from foundry_support import LAUNCHER, Launcher

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]

GROUNDED = [
    {"role": "system", "content": "Answer the question using only the context."},
    {"role": "user", "content": "Context: The Larkspur library opens at 9 am and closes at 6 pm. "
                                "Its head librarian is Marta Quill.\n\n"
                                "Question: Who is the head librarian of the Larkspur library?"},
]
LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]
COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]


async def answer(engine, messages, **options):
    gen = engine.stream(messages, GenerationOptions(**options))
    pieces = [p async for p in gen]
    return pieces, gen.usage


async def test_lists_the_service_model_and_resolves_its_alias(engine, foundry_service):
    models = await engine.list_models()
    assert foundry_service.model in [m.id for m in models]
    assert all(m.engine == "foundry" for m in models)
    alias = foundry_service.model.split("-generic-")[0]  # smollm2-135m-instruct
    assert await engine.resolve_model(alias) == foundry_service.model
    assert await engine.resolve_model(foundry_service.model) == foundry_service.model


async def test_grounded_answer_streams_in_pieces_with_usage(engine):
    pieces, usage = await answer(engine, GROUNDED, max_new_tokens=60)
    text = "".join(pieces)
    assert "Marta Quill" in text, text
    assert len(pieces) >= 3
    assert usage.finish_reason == "stop"
    assert usage.prompt_tokens > 20 and usage.completion_tokens >= len(pieces) - 1
    assert 0 < usage.time_to_first_token < usage.total_time
    assert usage.tokens_per_second > 1


async def test_options_reach_the_service(engine):
    text, usage = await answer(engine, COUNT, max_new_tokens=40)
    assert "5" in "".join(text) and usage.finish_reason == "stop"
    stopped, usage = await answer(engine, COUNT, max_new_tokens=40, stop=["5"])
    assert "5" not in "".join(stopped) and "4" in "".join(stopped)
    short, usage = await answer(engine, LONG, max_new_tokens=4)
    assert usage.completion_tokens <= 4 and usage.finish_reason == "length"


async def test_cancel_mid_stream_is_prompt_and_service_stays_usable(engine):
    gen = engine.stream(LONG, GenerationOptions(max_new_tokens=400))
    got = []
    t_cancel = None
    async for piece in gen:
        got.append(piece)
        if len(got) == 3:
            t_cancel = time.perf_counter()
            await gen.cancel()
    ended = time.perf_counter() - t_cancel
    assert ended < 1.0, f"iteration went on {ended:.2f}s after cancel"
    assert len(got) <= 4
    assert gen.usage.finish_reason == "cancelled"
    pieces, usage = await answer(engine, GROUNDED, max_new_tokens=30)
    assert pieces and usage.finish_reason in ("stop", "length")


async def test_cancel_from_another_task(engine):
    gen = engine.stream(LONG, GenerationOptions(max_new_tokens=400))
    got = []

    async def consume():
        async for piece in gen:
            got.append(piece)

    task = asyncio.create_task(consume())
    while len(got) < 2:
        await asyncio.sleep(0.01)
    await gen.cancel()
    await asyncio.wait_for(task, 1.0)
    assert gen.usage.finish_reason == "cancelled" and len(got) < 100


async def test_four_concurrent_streams_complete(engine):
    questions = [GROUNDED, COUNT, LONG, GROUNDED]
    results = await asyncio.wait_for(
        asyncio.gather(*(answer(engine, q, max_new_tokens=40) for q in questions)), 120)
    for pieces, usage in results:
        assert len(pieces) >= 3
        assert usage.finish_reason in ("stop", "length")
        assert usage.completion_tokens > 0
    assert "Marta Quill" in "".join(results[0][0]) and "Marta Quill" in "".join(results[3][0])


async def test_unknown_model_names_the_available_ones(engine, foundry_service):
    with pytest.raises(ModelNotFound) as err:
        async for _ in engine.stream(GROUNDED, model="phi-4-mini"):
            pass
    assert foundry_service.model in err.value.user_text()
    # a full id the service does not know goes to the service and comes back as 404
    eng = FoundryEngine(base_url=foundry_service.base_url)
    eng._resolved["ghost:1"] = "ghost:1"  # skip the listing check: send it as is
    with pytest.raises(ModelNotFound) as err:
        async for _ in eng.stream(GROUNDED, model="ghost:1"):
            pass
    assert foundry_service.model in err.value.user_text()
    await eng.aclose()


async def test_prompt_longer_than_context_is_prompt_too_long(engine):
    huge = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(PromptTooLong) as err:
        async for _ in engine.stream(huge, GenerationOptions(max_new_tokens=16)):
            pass
    assert err.value.context_length == 8192 and err.value.prompt_tokens > 8192
    assert "shorter" in err.value.user_text()
    assert await engine.context_length() == 8192  # learned from the service's answer


async def test_model_not_loaded_for_real(engine, foundry_service):
    """Unload the model through the service's own API, ask, then load it back."""
    root = foundry_service.base_url.rsplit("/v1", 1)[0]  # .../catalogs/local
    alias = foundry_service.alias
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        assert (await http.get(f"{root}/models/unload/{alias}")).status_code == 200
        try:
            with pytest.raises(ModelNotLoaded) as err:
                async for _ in engine.stream(GROUNDED, GenerationOptions(max_new_tokens=5)):
                    pass
            assert "make foundry" in err.value.user_text()
        finally:
            assert (await http.get(f"{root}/models/load/{alias}")).status_code == 200
    pieces, _ = await answer(engine, GROUNDED, max_new_tokens=20)
    assert pieces


async def test_discovers_the_launcher_from_its_state_file(foundry_service, monkeypatch):
    from rag.config import settings

    monkeypatch.setattr(settings(), "foundry_base_url", "")
    monkeypatch.setattr(settings(), "foundry_model", "")
    eng = FoundryEngine(state_file=foundry_service.state_file, discover_cli=False)
    state = json.loads(foundry_service.state_file.read_text())
    assert await eng.resolve_model() == state["model"] == foundry_service.model
    assert eng.base_url == foundry_service.base_url
    assert await eng.context_length() == 8192
    pieces, _ = await answer(eng, GROUNDED, max_new_tokens=30)
    assert "Marta" in "".join(pieces)
    await eng.aclose()


async def test_configured_url_of_the_launcher_gets_its_context_length(foundry_service):
    eng = FoundryEngine(base_url=foundry_service.base_url, state_file=foundry_service.state_file)
    assert await eng.context_length() == 8192  # from the launcher's state, not the 4096 default
    assert await eng.resolve_model() == foundry_service.model
    await eng.aclose()


async def test_launcher_killed_mid_stream_then_a_new_service_is_found(tmp_path, model_dir, monkeypatch):
    from rag.config import settings

    monkeypatch.setattr(settings(), "foundry_base_url", "")
    monkeypatch.setattr(settings(), "foundry_model", "")
    first = await asyncio.to_thread(Launcher(root=tmp_path, model_dir=model_dir).start)
    eng = FoundryEngine(state_file=first.state_file, discover_cli=False)
    got = []
    try:
        with pytest.raises((StreamBroken, EngineUnavailable)) as err:
            async for piece in eng.stream(LONG, GenerationOptions(max_new_tokens=400)):
                got.append(piece)
                if len(got) == 3:
                    await asyncio.to_thread(first.kill)
        assert len(got) < 100  # the stream ended soon after the kill, not after 400 tokens
        assert "incomplete" in err.value.user_text() or "make foundry" in err.value.user_text()
        t0 = time.perf_counter()
        with pytest.raises(EngineUnavailable) as err:  # nothing there now: clear and quick
            async for _ in eng.stream(GROUNDED):
                pass
        assert time.perf_counter() - t0 < 2.0
        assert "make foundry" in err.value.user_text()

        second = await asyncio.to_thread(Launcher(root=tmp_path, model_dir=model_dir).start)
        assert "reusing registration" in (tmp_path / "launcher.log").read_text()  # idempotent register
        try:
            pieces, usage = await answer(eng, GROUNDED, max_new_tokens=40)
            assert "Marta Quill" in "".join(pieces)
            assert eng.base_url == second.base_url
        finally:
            assert await asyncio.to_thread(second.stop) == 0
            assert not second.state_file.exists()
    finally:
        first.kill()
        await eng.aclose()


async def test_launcher_on_a_taken_port_fails_at_once_with_a_clear_message(tmp_path, model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, str(LAUNCHER), "--model", str(model_dir), "--port", str(port),
               "--data-dir", str(tmp_path / "data"), "--state-file", str(tmp_path / "state.json")]
        env = dict(os.environ, HOME=str(tmp_path), LRC_CACHE_DIR=str(tmp_path / "cache"))
        t0 = time.perf_counter()
        done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, env=env,
                                       timeout=60)
    assert done.returncode == 1
    assert time.perf_counter() - t0 < 20
    assert f"Port {port} is taken" in done.stderr
    assert "READY" not in done.stdout and not (tmp_path / "state.json").exists()


async def test_event_loop_stays_responsive_while_streaming(engine):
    """Streaming over HTTP must not stall the loop (the chat UI shares it)."""
    lags = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(answer(engine, GROUNDED, max_new_tokens=40),
                                       answer(engine, LONG, max_new_tokens=80))
    finally:
        stop.set()
        await tick
    assert all(pieces for pieces, _ in results)
    assert len(lags) > 20
    # a blocking call here would stall for the whole answer (seconds); 500 ms leaves room for the OS
    # scheduler on 2 cores shared with other test workers (a 10 ms sleep was seen to overrun by 276 ms),
    # and a 95th percentile of 50 ms catches a stall on every token
    typical = sorted(lags)[int(len(lags) * 0.95)]
    assert max(lags) < 0.5, f"event loop stalled {max(lags) * 1000:.0f} ms"
    assert typical < 0.05, f"the loop's ticks were late: 95th percentile {typical * 1000:.0f} ms"


async def test_launcher_stops_when_its_parent_dies(tmp_path, model_dir):
    """A crashed test run or benchmark must not leave a service behind (--stop-with-parent)."""
    state = tmp_path / "state.json"
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, {str(LAUNCHER)!r}, '--model', {str(model_dir)!r}, "
        f"'--data-dir', {str(tmp_path / 'data')!r}, '--state-file', {str(state)!r}, '--stop-with-parent'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n")
    env = dict(os.environ, HOME=str(tmp_path), LRC_CACHE_DIR=str(tmp_path / "cache"))
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, env=env)
    child_pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert state.exists(), "launcher did not become ready"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(child_pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("launcher outlived its parent by 15 s")
        assert not state.exists()
    finally:
        parent.kill()
        try:
            os.kill(child_pid, 9)
        except ProcessLookupError:
            pass


async def test_base_url_without_v1_says_how_to_fix_it(foundry_service):
    root = foundry_service.base_url.rsplit("/catalogs/", 1)[0]  # http://127.0.0.1:PORT
    eng = FoundryEngine(base_url=root, model=foundry_service.model)
    with pytest.raises(EngineUnavailable) as err:
        await eng.list_models()
    assert "/catalogs/local/v1" in err.value.user_text() and "\n" not in err.value.user_text()
    with pytest.raises(EngineUnavailable):
        async for _ in eng.stream(GROUNDED):
            pass
    await eng.aclose()


async def test_sigterm_mid_stream_stops_the_launcher_cleanly(tmp_path, model_dir):
    service = await asyncio.to_thread(Launcher(root=tmp_path, model_dir=model_dir).start)
    eng = FoundryEngine(base_url=service.base_url, model=service.model)
    got = []
    outcome = "completed"
    try:
        try:
            async for piece in eng.stream(LONG, GenerationOptions(max_new_tokens=400)):
                got.append(piece)
                if len(got) == 3:
                    service.proc.send_signal(signal.SIGTERM)
        except (StreamBroken, EngineUnavailable) as exc:
            outcome = type(exc).__name__
        code = await asyncio.to_thread(service.proc.wait, 20)
    finally:
        service.kill()
        await eng.aclose()
    assert code == 0, f"exit code {code} after SIGTERM mid-stream ({outcome})"
    assert not service.state_file.exists()
    assert outcome in ("StreamBroken", "completed")
