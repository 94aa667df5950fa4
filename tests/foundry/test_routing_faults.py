"""The "auto" engine with real faults: a real Foundry Local service (scripts/foundry_local.py) stopped
before the question and killed mid-answer, and a real slow server that misses the first-token
deadline (foundry_support.FaultServer). The fallback is the real in-process engine. Each case shows
the reason line (pipeline.Routed)."""
from __future__ import annotations

import asyncio
import time

import pytest

from engines import registry
from foundry_support import FaultServer, Launcher
from rag import pipeline as pl
from rag.config import settings

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]
LONG = "Write a long, detailed essay about the history of libraries, with many examples."


def rules(tmp_path, monkeypatch, foundry_model: str, deadline: float = 60) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(f"""
[[target]]
name = "service"
engine = "foundry"
model = "{foundry_model}"
first_token_deadline_s = {deadline}

[[target]]
name = "here"
engine = "onnx"
model = "smollm2"
""")
    monkeypatch.setenv("LRC_ROUTING", str(path))


def opts(**kw) -> pl.Options:
    return pl.Options(**{**dict(engine="auto", mode="off", temperature=0.0, max_new_tokens=24), **kw})


@pytest.fixture
async def foundry_at(monkeypatch):
    """Point the process-wide 'foundry' engine at a URL (what the routing rules' foundry target uses):
    through its settings, so the registry gives the instance made for them."""
    made = []

    def point(base_url: str, first_byte_timeout: float | None = None):
        monkeypatch.setenv("FOUNDRY_BASE_URL", base_url)
        if first_byte_timeout is not None:
            monkeypatch.setenv("FOUNDRY_FIRST_BYTE_TIMEOUT", str(first_byte_timeout))
        made.append(settings().engine_config("foundry"))
        return pl.engine("foundry")

    yield point
    for config in made:
        await registry.close("foundry", config)


async def test_killed_mid_answer_keeps_the_partial_then_stopped_before_falls_back_at_once(
        tmp_path, monkeypatch, model_dir, foundry_at):
    launcher = await asyncio.to_thread(Launcher(root=tmp_path / "svc", model_dir=model_dir).start)
    try:
        foundry_at(launcher.base_url)
        rules(tmp_path, monkeypatch, launcher.model)
        events, foundry_tokens = [], 0
        async for ev in pl.answer(LONG, [], opts(max_new_tokens=300), lib=pl.library):
            events.append(ev)
            if isinstance(ev, pl.Token) and not any(isinstance(e, pl.FellBack) for e in events):
                foundry_tokens += 1
                if foundry_tokens == 5:
                    await asyncio.to_thread(launcher.kill)  # SIGKILL: the service vanishes mid-stream
        routed = [e for e in events if isinstance(e, pl.Routed)]
        fell = [e for e in events if isinstance(e, pl.FellBack)]
        assert [r.engine for r in routed] == ["foundry", "onnx"], routed
        assert len(fell) == 1 and len(fell[0].partial) > 5, fell
        assert events.index(routed[0]) < events.index(fell[0]) < events.index(routed[1])
        assert "stopped mid-answer" in routed[1].reason and "Foundry Local" in routed[1].reason, routed[1]
        done = events[-1]
        assert isinstance(done, pl.Done) and done.engine == "onnx"
        assert fell[0].partial not in done.text, "the fallback answers in full; the partial is not mixed in"
    finally:
        await asyncio.to_thread(launcher.kill)

    # the service is gone now: the next question goes to the fallback at once, saying why
    t0 = time.perf_counter()
    events = [ev async for ev in pl.answer("Say hello.", [], opts(), lib=pl.library)]
    routed = [e for e in events if isinstance(e, pl.Routed)]
    assert len(routed) == 1 and routed[0].engine == "onnx", events
    assert "not reachable" in routed[0].reason and "Foundry Local" in routed[0].reason, routed[0].reason
    first_token = next(i for i, e in enumerate(events) if isinstance(e, pl.Token))
    assert events.index(routed[0]) < first_token
    assert not any(isinstance(e, pl.FellBack) for e in events)
    assert isinstance(events[-1], pl.Done) and events[-1].engine == "onnx"
    assert time.perf_counter() - t0 < 30, "falls back without waiting for a deadline"


async def test_a_missed_first_token_deadline_falls_back(tmp_path, monkeypatch, model_dir, foundry_at):
    with FaultServer(slow_seconds=30) as slow:
        foundry_at(slow.base_url, first_byte_timeout=60)
        rules(tmp_path, monkeypatch, "slow", deadline=2)
        t0 = time.perf_counter()
        events, first_token_at = [], None
        async for ev in pl.answer("Say hello.", [], opts(), lib=pl.library):
            events.append(ev)
            if isinstance(ev, pl.Token) and first_token_at is None:
                first_token_at = time.perf_counter() - t0
        assert slow.requests, "the slow server was really asked"
    routed = [e for e in events if isinstance(e, pl.Routed)]
    assert len(routed) == 1 and routed[0].engine == "onnx", events
    assert "missed" in routed[0].reason and "2 s" in routed[0].reason, routed[0].reason
    assert isinstance(events[-1], pl.Done) and events[-1].engine == "onnx"
    assert first_token_at is not None and first_token_at >= 2.0, "the deadline was waited for, not skipped"
