"""The /browser routes without a browser (rag.browser): what is served, with which headers, and who may ask.
The page itself running the model is tests/e2e/test_browser_inference.py."""
from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from rag import browser
from rag.browser import assets

LOCAL = ("127.0.0.1", 50000)


def client(host: tuple[str, int] = LOCAL) -> TestClient:
    app = FastAPI()
    browser.mount(app)
    return TestClient(app, client=host)


def test_the_page_is_served_cross_origin_isolated_and_revalidated():
    c = client()
    page = c.get("/browser")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"
    again = c.get("/browser", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    for name in ("page.js", "guard.js", "worker.js", "tokens.js", "page.css"):
        assert c.get(f"/browser/page/{name}").status_code == 200


def test_only_the_listed_files_are_served():
    c = client()
    for url in ("/browser/page/secret.py", "/browser/model/lrc_model.json", "/browser/ort/package.json"):
        r = c.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"]["message"]
    assert c.get("/browser/model/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_model_files_are_sent_uncompressed_with_a_version(smollm2_dir):
    c = client()
    status = c.get("/browser/api/status").json()
    assert status["model"]["ready"], status
    assert {f["name"] for f in status["model"]["files"]} == set(assets.MODEL_FILES)
    assert status["model"]["config"]["layers"] == 30 and status["model"]["config"]["eos"] == [2]
    r = c.get("/browser/model/model.onnx", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "identity"  # the app's gzip would take ~50 s for the weights
    assert r.headers["etag"] == next(f["etag"] for f in status["model"]["files"] if f["name"] == "model.onnx")


def test_without_a_model_build_the_status_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LRC_CACHE_DIR", str(tmp_path))
    c = client()
    status = c.get("/browser/api/status").json()
    assert status["model"]["ready"] is False
    assert "not built" in status["model"]["problem"]["message"]
    assert "python -m rag models pull smollm2-web" in status["model"]["problem"]["hint"]
    r = c.get("/browser/model/model.onnx.data")
    assert r.status_code == 503 and "not built" in r.json()["error"]["message"]
    r = c.post("/browser/api/context", json={"question": "What is this?"})
    assert r.status_code == 503 and "pull smollm2-web" in r.json()["error"]["hint"]


def test_without_a_login_only_this_machine_may_ask():
    for route in ("context", "check"):
        r = client(("192.168.1.20", 50000)).post(f"/browser/api/{route}", json={"question": "What is this?", "answer": "x"})
        assert r.status_code == 403 and "this machine only" in r.json()["error"]["message"]


def test_a_check_needs_a_question_and_an_answer():
    c = client()
    r = c.post("/browser/api/check", json={"answer": "It is set to 6."})
    assert r.status_code == 400 and "question" in r.json()["error"]["message"]
    for answer in (None, "", "   ", 42):
        r = c.post("/browser/api/check", json={"question": "Which settings can I change?", "answer": answer})
        assert r.status_code == 400 and "answer to check is empty" in r.json()["error"]["message"], r.json()
    r = c.post("/browser/api/check", json={"question": "Which settings?", "answer": "x", "max_new_tokens": "many"})
    assert r.status_code == 400 and "whole number" in r.json()["error"]["message"]


def test_the_api_key_is_required_when_set(monkeypatch):
    monkeypatch.setenv("LRC_API_KEY", "s3cret")
    c = client()
    assert c.get("/browser/api/status").json()["key_required"] is True
    r = c.post("/browser/api/context", json={"question": "What is this?"})
    assert r.status_code == 401
    r = c.post("/browser/api/context", json={"question": ""}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]


def test_the_engine_encodes_the_prompt_as_its_tokenizer_does(tiny_model_dir):
    import onnxruntime_genai as og

    from engines.onnx.engine import OnnxGenaiEngine

    messages = [{"role": "system", "content": "Passage [1] (a.md):\nThe sky is blue."},
                {"role": "user", "content": "What colour is the sky?"}]

    async def run():
        engine = OnnxGenaiEngine(extra_dirs=[tiny_model_dir])
        try:
            return (await engine.encode(messages, model=str(tiny_model_dir)),
                    await engine.count_tokens(messages, model=str(tiny_model_dir)))
        finally:
            await engine.aclose()

    ids, count = asyncio.run(run())
    tokenizer = og.Tokenizer(og.Model(str(tiny_model_dir)))
    expected = list(tokenizer.encode(tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)))
    assert ids == [int(t) for t in expected] and len(ids) == count


@pytest.mark.parametrize("name", assets.RUNTIME_FILES)
def test_the_runtime_comes_from_the_app(name):
    problem = assets.runtime_problem()
    if problem:
        pytest.fail(f"{problem.message} {problem.hint}")
    r = client().get(f"/browser/ort/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/wasm" if name.endswith(".wasm") else "text/javascript")
