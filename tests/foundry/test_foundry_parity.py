"""Same model, same greedy prompt: the in-process engine and Foundry Local answer alike."""
from __future__ import annotations

import difflib

import pytest

from engines import registry
from engines.base import GenerationOptions

pytestmark = [pytest.mark.foundry, pytest.mark.asyncio(loop_scope="session")]

PROMPTS = [
    ([{"role": "system", "content": "Answer the question using only the context."},
      {"role": "user", "content": "Context: The Larkspur library opens at 9 am and closes at 6 pm. "
                                  "Its head librarian is Marta Quill.\n\n"
                                  "Question: When does the Larkspur library close?"}],
     ["6 pm"]),
    ([{"role": "user", "content": "Explain in two sentences why the sky is blue."}], ["scattering"]),
]


async def _answer(engine, messages):
    gen = engine.stream(messages, GenerationOptions(max_new_tokens=60, temperature=0.0))
    text = "".join([piece async for piece in gen])
    return text, gen.usage


@pytest.fixture(scope="module")
async def onnx_engine(model_dir):
    eng = registry.create("onnx", default_model=str(model_dir))
    yield eng
    await eng.aclose()


@pytest.mark.parametrize("messages,facts", PROMPTS, ids=["grounded", "open"])
async def test_same_greedy_answer_in_process_and_through_foundry_local(engine, onnx_engine, messages, facts):
    local, local_usage = await _answer(onnx_engine, messages)
    served, served_usage = await _answer(engine, messages)
    for fact in facts:
        assert fact in local.lower() or fact in local, f"in-process answer lacks {fact!r}: {local!r}"
        assert fact in served.lower() or fact in served, f"Foundry Local answer lacks {fact!r}: {served!r}"
    similarity = difflib.SequenceMatcher(None, local, served).ratio()
    assert similarity >= 0.8, f"answers differ (similarity {similarity:.2f}):\n{local!r}\n{served!r}"
    # same chat template on both sides: the prompt costs the same number of tokens
    assert abs(local_usage.prompt_tokens - served_usage.prompt_tokens) <= 2
