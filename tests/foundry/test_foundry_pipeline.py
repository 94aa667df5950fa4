"""The chat's pipeline answering through Foundry Local (the engine the settings panel can pick)."""
from __future__ import annotations

import pytest

from engines import registry
from engines.foundry.engine import FoundryEngine
from rag import pipeline

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def shared_foundry(foundry_service, monkeypatch):
    """The process-wide 'foundry' engine, pointed at the test service."""
    eng = FoundryEngine(base_url=foundry_service.base_url)
    monkeypatch.setitem(registry._instances, "foundry", eng)
    yield eng
    await eng.aclose()


async def test_pipeline_streams_a_foundry_answer(shared_foundry, foundry_service):
    history = [{"role": "user", "content": "My dog is called Biscuit."},
               {"role": "assistant", "content": "Nice to meet Biscuit!"}]
    events = [ev async for ev in pipeline.answer(
        "Say hello in French.", history,
        pipeline.Options(engine="foundry", model="", mode="off", max_new_tokens=24))]
    kinds = [type(ev).__name__ for ev in events]
    assert "Failed" not in kinds, [ev for ev in events if isinstance(ev, pipeline.Failed)]
    tokens = [ev.text for ev in events if isinstance(ev, pipeline.Token)]
    done = events[-1]
    assert isinstance(done, pipeline.Done) and len(tokens) >= 3
    assert done.engine == "foundry" and done.model == foundry_service.model
    assert done.text == "".join(tokens) and done.usage.completion_tokens > 0
    assert done.usage.time_to_first_token is not None


async def test_pipeline_reports_an_unreachable_service_as_a_failed_event(monkeypatch, tmp_path):
    from foundry_support import free_port

    eng = FoundryEngine(base_url=f"http://127.0.0.1:{free_port()}/v1", state_file=tmp_path / "x.json")
    monkeypatch.setitem(registry._instances, "foundry", eng)
    events = [ev async for ev in pipeline.answer(
        "Hello?", None, pipeline.Options(engine="foundry", mode="off", max_new_tokens=16))]
    failed = [ev for ev in events if isinstance(ev, pipeline.Failed)]
    assert failed and failed[0].category is pipeline.ErrorCategory.UNAVAILABLE
    assert "make foundry" in failed[0].text
    await eng.aclose()
