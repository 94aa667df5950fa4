"""Every failure as an OpenAI error (`{"error": {"message", "type", "param", "code"}}`) with the right
HTTP status, seen through the official client (its typed exceptions) and raw HTTP, on the real server."""
from __future__ import annotations

import httpx
import openai
import pytest

from api_server import QUESTION

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": QUESTION}]


def _error(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    message = body["error"]["message"]
    assert message and "Traceback" not in message and "validation error" not in message, message
    return body["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404(api_server, stream):
    with pytest.raises(openai.NotFoundError) as info:
        api_server.client().chat.completions.create(model="rag:no-such-model", messages=ASK, stream=stream)
    err = _error(info.value)
    assert err["code"] == "model_not_found" and err["param"] == "model" and "rag:no-such-model" in err["message"]
    with pytest.raises(openai.NotFoundError):
        api_server.client().chat.completions.create(model="gpt-4o", messages=ASK)
    with pytest.raises(openai.NotFoundError):
        api_server.client().chat.completions.create(model="rag:/etc", messages=ASK)  # no folder paths
    with pytest.raises(openai.NotFoundError):
        api_server.client().embeddings.create(model="rag:smollm2", input="x")


@pytest.mark.parametrize("body, param, words", [
    ({"model": "rag"}, "messages", "Missing required parameter"),
    ({"model": "rag", "messages": []}, "messages", "at least one"),
    ({"model": "rag", "messages": ASK, "n": 2}, "n", "'n' must be 1"),
    ({"model": "rag", "messages": ASK, "temperature": 5}, "temperature", "less than or equal to 2"),
    ({"model": "rag", "messages": ASK, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"model": "rag", "messages": ASK, "stop": [1]}, "stop", "list of up to 4 strings"),
    ({"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]}, "messages", "no user message"),
    ({"model": "rag", "messages": [{"role": "user", "content": "  "}]}, "messages[0].content", "empty"),
    ({"model": "rag", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]", "only text parts"),
    ({"model": "rag", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "Input should be"),
    ({"model": "rag:embed", "input": [[1, 2, 3]]}, "input", "token-id arrays"),
    ({"model": "rag:embed", "input": []}, "input", "non-empty list"),
    ({"model": "rag:embed", "input": "x", "dimensions": 64}, "dimensions", "384"),
])
def test_bad_requests_are_400_with_a_readable_message(api_server, body, param, words):
    route = "embeddings" if "input" in body else "chat/completions"
    resp = httpx.post(f"{api_server.url}/{route}", json=body, headers=api_server.headers, timeout=30)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and words in err["message"], err
    assert "pydantic" not in err["message"] and "Traceback" not in err["message"]


def test_bad_request_through_the_client(api_server):
    with pytest.raises(openai.BadRequestError) as info:
        api_server.client().chat.completions.create(model="rag", messages=ASK, temperature=5)
    assert _error(info.value)["param"] == "temperature"


def test_not_json_is_400(api_server):
    json_type = {**api_server.headers, "Content-Type": "application/json"}
    resp = httpx.post(f"{api_server.url}/chat/completions", content=b"{not json", headers=json_type)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    # a body that does not say it is JSON is refused before it is read (rag.web.guard: no "simple" requests)
    resp = httpx.post(f"{api_server.url}/chat/completions", content=b"{not json", headers=api_server.headers)
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_too_long_is_400_context_length_exceeded(api_server, stream):
    huge = "Tell me about the Quillfeather lantern. " + "lantern oil wick heron " * 4000  # > 8192 tokens
    with pytest.raises(openai.BadRequestError) as info:
        api_server.client().chat.completions.create(model="rag:tiny", messages=[{"role": "user", "content": huge}],
                                                    stream=stream)
    err = _error(info.value)
    assert err["code"] == "context_length_exceeded", err
    assert "does not fit the model's context" in err["message"]


def test_engine_down_is_503(api_server):
    with pytest.raises(openai.InternalServerError) as info:
        api_server.client().chat.completions.create(model="rag:foundry/x", messages=ASK)
    assert info.value.status_code == 503
    err = _error(info.value)
    assert err["code"] == "unavailable" and err["type"] == "server_error" and "not reachable" in err["message"], err


def test_wrong_or_missing_key_is_401(api_server):
    with pytest.raises(openai.AuthenticationError) as info:
        api_server.client(key="wrong-key").chat.completions.create(model="rag", messages=ASK)
    assert _error(info.value)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        api_server.client(key="wrong-key").models.list()
    for route in ("models", "embeddings", "chat/completions"):
        resp = httpx.request("GET" if route == "models" else "POST", f"{api_server.url}/{route}", json={})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key", resp.text
        assert resp.headers["www-authenticate"] == "Bearer"


def test_huge_body_is_413(api_server):
    big = "x" * (1 << 20)
    with pytest.raises(openai.APIStatusError) as info:
        api_server.client().chat.completions.create(model="rag", messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    assert _error(info.value)["code"] == "request_too_large"
    # no Content-Length (chunked): cut off at the limit as the bytes arrive
    resp = httpx.post(f"{api_server.url}/embeddings", headers={**api_server.headers, "Content-Type": "application/json"},
                      content=(b"x" * 65536 for _ in range(20)))
    assert resp.status_code == 413, resp.text


def test_unknown_route_is_404(api_server):
    resp = httpx.get(f"{api_server.url}/completions", headers=api_server.headers)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_route"
