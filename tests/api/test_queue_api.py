"""The engine's fair queue seen from /v1 (rag.scheduler, rag.api.chat): a real server (api_server.start) whose
line holds one waiting request, real HTTP clients and a real ``openai`` client. A waiting stream starts at
once with its place in headers and SSE comment lines; a full line is 429 ``rate_limit_exceeded`` with
Retry-After; a client that hangs up while waiting leaves the line at once."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import api_server as support

pytestmark = pytest.mark.slow
MODEL = "rag:smollm2"
# a question that keeps the model writing for a while: the holder's answer must outlast the checks below
LONG = ("Describe the Quillfeather lantern in great detail: its oil, its wick, its sound, its history, "
        "and every step of caring for it, with an example for each step.")


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory, smollm2_dir):
    server = support.start(tmp_path_factory.mktemp("queue-api"),
                           env_extra={"LRC_MAX_WAITING": "1", "LRC_ONNX_SLOTS": "1"})
    try:
        yield server
    finally:
        server.stop()


def body(user: str, max_tokens: int = 24, question: str = support.QUESTION) -> dict:
    return {"model": MODEL, "stream": True, "max_tokens": max_tokens, "user": user, "temperature": 0.8,
            "messages": [{"role": "user", "content": question}]}


async def _first_token(client: httpx.AsyncClient, server, user: str, started: asyncio.Event, lines: list):
    """A long streamed answer: ``started`` once the model's text arrives (it holds the only slot)."""
    async with client.stream("POST", f"{server.url}/chat/completions", json=body(user, 600, LONG),
                             headers=server.headers) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            lines.append(line)
            if line.startswith("data: {") and json.loads(line[6:])["choices"] and \
                    json.loads(line[6:])["choices"][0]["delta"].get("content"):
                started.set()


async def _holding(server, user: str):
    """(client, task, lines): a long answer generating, once it does."""
    client = httpx.AsyncClient(timeout=300)
    started, lines = asyncio.Event(), []
    task = asyncio.create_task(_first_token(client, server, user, started, lines))
    await asyncio.wait_for(started.wait(), 120)
    return client, task, lines


async def test_a_waiting_stream_hears_its_place_and_a_full_line_is_429(busy_server):
    from openai import AsyncOpenAI, RateLimitError

    client, holder, _ = await _holding(busy_server, "holder")
    try:
        async with client.stream("POST", f"{busy_server.url}/chat/completions", json=body("waiter"),
                                 headers=busy_server.headers) as resp:
            # the stream started while it waits: its place in the headers
            assert resp.status_code == 200 and resp.headers["x-queue-position"] == "1"
            assert "x-queue-wait" in resp.headers
            lines = resp.aiter_lines()
            comments = []
            async for line in lines:
                if line.startswith(": "):
                    comments.append(line)
                    break
            assert comments and comments[0].startswith(": 1st in line"), comments

            # the line (LRC_MAX_WAITING=1) is full now: a real OpenAI client gets 429 with Retry-After
            openai = AsyncOpenAI(base_url=busy_server.url, api_key=busy_server.key, max_retries=0, timeout=60)
            with pytest.raises(RateLimitError) as caught:
                await openai.chat.completions.create(model=MODEL, max_tokens=16, user="third",
                                                     messages=[{"role": "user", "content": support.QUESTION}])
            err = caught.value
            assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "requests"
            assert int(err.response.headers["retry-after"]) >= 1
            assert "busy" in err.message and "Retry in" in err.message

            text = ""
            async for line in lines:  # its answer comes once the holder's is done
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
            assert text.strip(), "the waiting answer came in full once its turn came"
    finally:
        await holder
        await client.aclose()


async def test_a_client_that_hangs_up_while_waiting_leaves_the_line_at_once(busy_server):
    client, holder, _ = await _holding(busy_server, "holder")
    try:
        async with client.stream("POST", f"{busy_server.url}/chat/completions", json=body("quitter"),
                                 headers=busy_server.headers) as resp:
            assert resp.headers["x-queue-position"] == "1"
        # it hung up: its place is free again (else this request would be refused: the line holds one)
        await asyncio.sleep(0.5)
        late = httpx.AsyncClient(timeout=300)
        try:
            async with late.stream("POST", f"{busy_server.url}/chat/completions", json=body("late"),
                                   headers=busy_server.headers) as resp:
                assert resp.status_code == 200, await resp.aread()
                assert resp.headers["x-queue-position"] == "1"
                data = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
            assert data[-1] == "data: [DONE]" and not any('"error"' in d for d in data)
        finally:
            await late.aclose()
    finally:
        await holder
        await client.aclose()
