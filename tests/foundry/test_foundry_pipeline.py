"""The chat's pipeline answering through Foundry Local (the engine the settings panel can pick)."""
from __future__ import annotations

import pytest

from engines import registry
from rag import pipeline
from rag.config import settings

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]


async def pointed_at(base_url: str, monkeypatch):
    """The process-wide 'foundry' engine for settings that name ``base_url`` (the registry's instance for
    them: what the pipeline's ``engine("foundry")`` gives); closed after the test."""
    monkeypatch.setenv("FOUNDRY_BASE_URL", base_url)
    eng = pipeline.engine("foundry")
    assert eng is registry.get("foundry", settings().engine_config("foundry"))
    return eng


@pytest.fixture
async def shared_foundry(foundry_service, monkeypatch):
    """The process-wide 'foundry' engine, pointed at the test service."""
    eng = await pointed_at(foundry_service.base_url, monkeypatch)
    yield eng
    await registry.close("foundry", settings().engine_config("foundry"))


async def test_pipeline_streams_a_foundry_answer(shared_foundry, foundry_service):
    history = [{"role": "user", "content": "My dog is called Biscuit."},
               {"role": "assistant", "content": "Nice to meet Biscuit!"}]
    events = [ev async for ev in pipeline.answer(
        "Say hello in French.", history,
        pipeline.Options(engine="foundry", model="", mode="off", max_new_tokens=24), lib=pipeline.library)]
    kinds = [type(ev).__name__ for ev in events]
    assert "Failed" not in kinds, [ev for ev in events if isinstance(ev, pipeline.Failed)]
    tokens = [ev.text for ev in events if isinstance(ev, pipeline.Token)]
    done = events[-1]
    assert isinstance(done, pipeline.Done) and len(tokens) >= 3
    assert done.engine == "foundry" and done.model == foundry_service.model
    assert done.text == done.answer == "".join(tokens) and done.quote == "" and done.usage.completion_tokens > 0
    assert done.usage.time_to_first_token is not None


async def test_pipeline_reports_an_unreachable_service_as_a_failed_event(monkeypatch):
    from foundry_support import free_port

    await pointed_at(f"http://127.0.0.1:{free_port()}/v1", monkeypatch)
    events = [ev async for ev in pipeline.answer(
        "Hello?", None, pipeline.Options(engine="foundry", mode="off", max_new_tokens=16), lib=pipeline.library)]
    failed = [ev for ev in events if isinstance(ev, pipeline.Failed)]
    assert failed and failed[0].category is pipeline.ErrorCategory.UNAVAILABLE
    assert "make foundry" in failed[0].text
    await registry.close("foundry", settings().engine_config("foundry"))
