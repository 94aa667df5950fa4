"""Faults a chat must survive, produced for real: a closed port, and a misbehaving HTTP server
(tests/foundry/foundry_support.py) for garbled/cut streams, 5xx and a slow first byte."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from engines.base import (EngineTimeout, EngineUnavailable, GenerationFailed, GenerationOptions,
                          ModelNotFound, StreamBroken)
from engines.foundry.engine import FoundryEngine
from foundry_support import FaultServer, free_port

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]

Q = [{"role": "user", "content": "Say hello."}]


async def collect(gen) -> list[str]:
    return [piece async for piece in gen]


@pytest.fixture
def fault_server():
    with FaultServer(slow_seconds=30) as srv:
        yield srv


@pytest.fixture
async def fault_engine(fault_server):
    eng = FoundryEngine(base_url=fault_server.base_url, first_byte_timeout=1.0, read_timeout=5.0)
    yield eng
    await eng.aclose()


async def test_nothing_listening_is_unavailable_within_2s(tmp_path):
    eng = FoundryEngine(base_url=f"http://127.0.0.1:{free_port()}/v1", model="anything",
                        state_file=tmp_path / "none.json")
    t0 = time.perf_counter()
    with pytest.raises(EngineUnavailable) as err:
        await collect(eng.stream(Q))
    assert time.perf_counter() - t0 < 2.0
    assert "make foundry" in err.value.user_text()
    t0 = time.perf_counter()
    with pytest.raises(EngineUnavailable):
        await eng.list_models()
    assert time.perf_counter() - t0 < 2.0
    await eng.aclose()


async def test_nothing_configured_says_how_to_start(tmp_path):
    eng = FoundryEngine(state_file=tmp_path / "absent.json", discover_cli=False)
    with pytest.raises(EngineUnavailable) as err:
        await eng.list_models()
    assert "make foundry" in err.value.user_text()


async def test_well_formed_stream_reads_usage(fault_engine, fault_server):
    gen = fault_engine.stream(Q, GenerationOptions(max_new_tokens=7, temperature=0.5, top_p=0.9,
                                                   stop=["\n\n"], seed=3), model="ok")
    assert "".join(await collect(gen)) == "Hello there."
    assert gen.usage.prompt_tokens == 11 and gen.usage.completion_tokens == 3
    assert gen.usage.finish_reason == "stop"
    assert gen.usage.time_to_first_token is not None and gen.usage.total_time >= gen.usage.time_to_first_token
    sent = fault_server.requests[-1]
    assert sent["stream"] is True and sent["max_tokens"] == 7 and sent["temperature"] == 0.5
    assert sent["top_p"] == 0.9 and sent["stop"] == ["\n\n"] and sent["seed"] == 3


@pytest.mark.parametrize("model", ["garbage", "not-sse", "truncated", "no-done"])
async def test_broken_streams_raise_stream_broken(fault_engine, model):
    got = []
    with pytest.raises(StreamBroken) as err:
        async for piece in fault_engine.stream(Q, model=model):
            got.append(piece)
    assert got and got[0] == "Hello"  # what arrived before the fault was delivered
    assert "incomplete" in err.value.user_text() or "cut off" in err.value.user_text()


@pytest.mark.parametrize("model,status", [("http500", "500"), ("http503", "503")])
async def test_5xx_is_generation_failed(fault_engine, fault_server, model, status):
    with pytest.raises(GenerationFailed) as err:
        await collect(fault_engine.stream(Q, model=model))
    assert status in str(err.value)
    assert len(fault_server.requests) == 1  # a server error is never retried


@pytest.mark.parametrize("model", ["slow", "slow-headers"])
async def test_slow_first_byte_times_out(fault_engine, model):
    t0 = time.perf_counter()
    with pytest.raises(EngineTimeout) as err:
        await collect(fault_engine.stream(Q, model=model))
    assert 0.9 < time.perf_counter() - t0 < 3.0
    assert "FOUNDRY_FIRST_BYTE_TIMEOUT" in err.value.user_text()


async def test_unknown_model_lists_available(fault_engine):
    with pytest.raises(ModelNotFound) as err:
        await collect(fault_engine.stream(Q, model="no-such-model"))
    assert "garbage" in err.value.user_text() and "ok" in err.value.user_text()


@pytest.mark.parametrize("model", ["slow", "slow-headers"])
async def test_cancel_during_slow_first_byte_is_prompt(fault_server, model):
    eng = FoundryEngine(base_url=fault_server.base_url, first_byte_timeout=30.0)
    gen = eng.stream(Q, model=model)
    task = asyncio.create_task(collect(gen))
    await asyncio.to_thread(fault_server.httpd.slow_started.wait, 5)
    await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    await gen.cancel()
    assert await asyncio.wait_for(task, 2.0) == []
    assert time.perf_counter() - t0 < 1.0
    assert gen.usage.finish_reason == "cancelled"
    await eng.aclose()


def _mock_foundry_cli(folder, output: str):
    """A stand-in `foundry` command (mock: the desktop CLI does not exist on Linux) printing ``output``."""
    folder.mkdir(exist_ok=True)
    script = folder / "foundry"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\n")
    script.chmod(0o755)
    return folder


async def test_desktop_service_url_from_mock_foundry_cli(fault_server, tmp_path, monkeypatch):
    port = fault_server.base_url.split(":")[2].split("/")[0]
    bin_dir = _mock_foundry_cli(tmp_path / "bin", f"🟢 Model management service is running on "
                                                 f"http://127.0.0.1:{port}/openai/status")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    eng = FoundryEngine(model="ok", state_file=tmp_path / "absent.json")
    assert "".join(await collect(eng.stream(Q))) == "Hello there."
    assert eng.base_url == fault_server.base_url  # root /v1 on the status port
    await eng.aclose()


async def test_mock_foundry_cli_says_not_running(tmp_path, monkeypatch):
    bin_dir = _mock_foundry_cli(tmp_path / "bin", "🔴 Model management service is not running!")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    eng = FoundryEngine(state_file=tmp_path / "absent.json")
    with pytest.raises(EngineUnavailable) as err:
        await eng.list_models()
    assert "foundry service start" in err.value.user_text()


async def test_service_without_stream_options_still_reports_usage(fault_engine, fault_server):
    gen = fault_engine.stream(Q, model="strict")
    assert "".join(await collect(gen)) == "Hello there."
    assert gen.usage.completion_tokens == 3  # counted from the pieces
    assert gen.usage.prompt_tokens > 0  # estimated
    assert "stream_options" in fault_server.requests[0] and "stream_options" not in fault_server.requests[1]
    gen = fault_engine.stream(Q, model="strict")  # remembered: no second refusal
    await collect(gen)
    assert len(fault_server.requests) == 3


async def test_connection_dropped_before_any_response_is_retried_once(fault_engine, fault_server):
    assert "".join(await collect(fault_engine.stream(Q, model="drop-once"))) == "Hello there."
    assert len(fault_server.requests) == 2
    with pytest.raises(EngineUnavailable) as err:
        await collect(fault_engine.stream(Q, model="drop"))
    assert len(fault_server.requests) == 4  # one retry, never more
    assert "dropped the connection" in str(err.value)
