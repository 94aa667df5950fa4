"""The API's parts without a model: model ids, stop strings across pieces, the text built from pipeline
events (streamed and not), the key check and the mount order in an app, and `rag serve` refusing to
listen on the network without a key."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from engines.base import Usage
from rag import pipeline
from rag.api import create_app, models, mount
from rag.api.chat import _without_decorations
from rag.api.render import StopCutter, Transcript, cut_at_stop
from rag.config import REPO_ROOT, settings
from rag.events import Done, Notice, Quoted, Revised, Sources, Token
from rag.schema import Chunk, Hit


def test_model_ids():
    assert models.parse("rag:auto") == models.ModelChoice(pipeline.AUTO, "")
    assert models.parse("rag:smollm2") == models.ModelChoice("onnx", "smollm2")
    assert models.parse("rag:onnx/tiny") == models.ModelChoice("onnx", "tiny")
    assert models.parse("rag:foundry/Phi-4-mini-instruct-generic-cpu:5") == \
        models.ModelChoice("foundry", "Phi-4-mini-instruct-generic-cpu:5")
    assert models.parse("rag:foundry/") is None and models.parse("rag:") is None
    assert models.parse("gpt-4o") is None and models.parse("ragx") is None
    assert models.parse("rag") == models.ModelChoice(settings().engine, settings().model)
    assert models.model_id("onnx", "tiny-random-smollm2") == "rag:tiny-random-smollm2"
    assert models.model_id("foundry", "qwen:1") == "rag:foundry/qwen:1"


@pytest.mark.parametrize("pieces", [["Hello wor", "ld. STOP here"], ["Hello world. ST", "OP", " here"],
                                    ["Hello world. S", "T", "O", "P here"]])
def test_stop_cutter_across_pieces(pieces):
    cutter = StopCutter(["STOP", "never"])
    out = "".join(cutter.feed(p) for p in pieces) + cutter.flush()
    assert out == "Hello world. " and cutter.hit
    assert cutter.feed("more") == ""


def test_stop_cutter_without_a_match_passes_everything():
    cutter = StopCutter(["zzz"])
    assert "".join(cutter.feed(p) for p in ["ab", "cz", "z"]) + cutter.flush() == "abczz" and not cutter.hit
    assert cut_at_stop("a\nb", ["\n"]) == ("a", True) and cut_at_stop("ab", []) == ("ab", False)


def _hit(name: str, page=None, score=0.5) -> Hit:
    return Hit(Chunk(id=1, text=f"text of {name}", source=f"/docs/{name}", page=page), score, 1, {"dense": 0.7})


EVENTS_HITS = [_hit("a.md"), _hit("b.pdf", page=3)]


def _events(checked: str):
    a, b = EVENTS_HITS
    quote = Quoted([("The lamp blinks green.", a)], 0.1)
    return [Notice("1 lower-ranked passage(s) left out."), quote, Token("Hold the"), Token(" button [2]."),
            Revised(checked, []), Sources([b], [a, b]),
            Done(Usage(prompt_tokens=10, completion_tokens=2, finish_reason="stop"), "onnx", "m",
                 quote.text, checked)]


def test_streamed_text_is_raw_tokens_then_the_check_note_then_sources():
    t = Transcript(streaming=True)
    checked = "Hold the button [2]. ⚠️\n\n*⚠️ not found in your documents (1 of 1 sentences)*"
    streamed = "".join(t.feed(ev) for ev in _events(checked))
    assert streamed == ("*1 lower-ranked passage(s) left out.*\n\nFrom your documents:\n> The lamp blinks green. (a.md)"
                        "\n\nHold the button [2].\n\n*⚠️ not found in your documents (1 of 1 sentences)*"
                        "\n\n**Sources:**\n[2] b.pdf, p. 3")
    assert t.content() == streamed
    assert t.sources == [{"index": 2, "file": "b.pdf", "page": 3, "section": "", "ocr": False,
                          "text": "text of b.pdf", "score": 0.5,
                          "scores": {"dense": 0.7}}]


def test_non_streamed_text_holds_the_checked_answer():
    t = Transcript(streaming=False)
    for ev in _events("Hold the button [1]."):
        t.feed(ev)
    assert t.content() == ("*1 lower-ranked passage(s) left out.*\n\nFrom your documents:\n"
                           "> The lamp blinks green. (a.md)\n\nHold the button [1].\n\n**Sources:**\n[2] b.pdf, p. 3")


def test_history_leaves_out_what_the_server_added():
    text = ("*A notice.*\n\nFrom your documents:\n> The lamp blinks green. (a.md)\n\nHold the button [1].\n\n"
            "**Sources:**\n[1] a.md\n[2] b.pdf, p. 3")
    assert _without_decorations(text) == "> The lamp blinks green. (a.md)\n\nHold the button [1]."


async def _get(app, path: str, **headers) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return await client.get(path, headers=headers)


async def test_the_key_is_required_only_when_set(monkeypatch):
    app = create_app(warm_up=False)
    monkeypatch.delenv("LRC_API_KEY", raising=False)
    assert (await _get(app, "/v1/nothing")).status_code == 404  # open (the server binds 127.0.0.1)
    monkeypatch.setenv("LRC_API_KEY", "s3cret")
    resp = await _get(app, "/v1/nothing")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"
    assert (await _get(app, "/v1/nothing", authorization="Bearer nope")).status_code == 401
    assert (await _get(app, "/v1/nothing", authorization="Basic s3cret")).status_code == 401
    assert (await _get(app, "/v1/nothing", authorization="Bearer s3cret")).status_code == 404


async def test_mount_puts_the_routes_before_a_catch_all(monkeypatch):
    monkeypatch.delenv("LRC_API_KEY", raising=False)
    app = FastAPI()

    @app.get("/{full_path:path}")
    async def page(full_path: str):  # what Chainlit serves for any unknown GET
        return HTMLResponse("<html>chat</html>")

    mount(app)
    resp = await _get(app, "/v1/nothing")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_route"
    assert (await _get(app, "/elsewhere")).text == "<html>chat</html>"


def test_serve_refuses_the_network_without_a_key():
    env = {k: v for k, v in os.environ.items() if k != "LRC_API_KEY"}
    res = subprocess.run([sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--port", "1"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "LRC_API_KEY" in res.stderr and "0.0.0.0" in res.stderr


def test_loopback_hosts():
    from rag.cmd.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")
