"""Per-user rate limits on /v1 (LRC_RATE_PER_MINUTE, rag.scheduler.admit): a real server (api_server.start)
allowing two questions a minute per user, a real ``openai`` client. The third question of a user within the
minute is 429 ``rate_limit_exceeded`` with Retry-After (streamed or not), before any work; another user is
not affected."""
from __future__ import annotations

import time

import httpx
import pytest

import api_server as support

pytestmark = pytest.mark.slow
MODEL = "rag:smollm2"


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory, smollm2_dir):
    server = support.start(tmp_path_factory.mktemp("rate-api"), env_extra={"LRC_RATE_PER_MINUTE": "2"})
    try:
        yield server
    finally:
        server.stop()


def ask(client, user: str):
    return client.chat.completions.create(model=MODEL, max_tokens=16, user=user,
                                          messages=[{"role": "user", "content": support.QUESTION}])


def test_a_user_beyond_the_rate_limit_gets_429_with_retry_after(limited_server):
    from openai import RateLimitError

    client = limited_server.client()
    first = time.monotonic()
    for _ in range(2):
        assert ask(client, "eager").choices[0].message.content.strip()
    with pytest.raises(RateLimitError) as caught:
        ask(client, "eager")
    err = caught.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "requests"
    retry = int(err.response.headers["retry-after"])
    assert 1 <= retry <= 60 - int(time.monotonic() - first) + 1, retry
    assert "2 questions in the last minute" in err.message and f"Retry in {retry} s." in err.message

    # a streamed request is refused the same way, with its HTTP status (nothing was streamed)
    body = {"model": MODEL, "stream": True, "max_tokens": 16, "user": "eager",
            "messages": [{"role": "user", "content": support.QUESTION}]}
    resp = httpx.post(f"{limited_server.url}/chat/completions", json=body, headers=limited_server.headers, timeout=60)
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(resp.headers["retry-after"]) <= 60

    # another user still has their two questions
    assert ask(client, "patient").choices[0].message.content.strip()
