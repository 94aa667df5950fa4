"""A PostgreSQL library that is down, for real (pgserver stopped): one error category, `unavailable`, seen
the same way everywhere: the pipeline's ``Failed`` event, /v1 (503 in OpenAI's error shape, streamed or
not, through the official client), the chat's message and the CLI's exit status. And the category
tables themselves: every category has its HTTP status, chat label and exit status."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import openai
import pytest

from engines.base import ErrorCategory, category_of, EngineTimeout, PromptTooLong
from rag import pipeline as pl
from rag.config import REPO_ROOT, offline_env
from rag.store import ModelMismatch, StoreTimeout, StoreUnavailable

pytestmark = pytest.mark.slow

QUESTION = "How do I descale a kettle?"


@pytest.fixture(scope="module")
def stopped_store():
    """The URI of a real PostgreSQL database whose server has been stopped."""
    from retrieval.conftest import start_pg  # tests/retrieval: the pgserver helper

    folder = Path(tempfile.mkdtemp(prefix="lrc-pgdown-"))
    server = start_pg(folder)
    uri = server.database()
    server.stop()
    yield uri
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def store_down(stopped_store, tmp_path, monkeypatch):
    """This process's settings point at the stopped library (the shared Library is the one for them)."""
    monkeypatch.setenv("LRC_STORE", stopped_store)
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LRC_API_KEY", raising=False)
    return stopped_store


def _names_the_library(message: str, uri: str) -> None:
    location = uri.split("@", 1)[-1].split("?", 1)[0]
    assert "library" in message and "not reachable" in message, message
    assert location.split("/")[-1] in message, (location, message)  # the database named
    assert "Check that PostgreSQL is running" in message, message
    assert "StoreUnavailable" not in message and "Traceback" not in message, message


async def test_the_pipeline_says_unavailable_with_a_readable_sentence(store_down):
    events = [e async for e in pl.answer(QUESTION, [], pl.Options(engine="onnx", model="tiny"), lib=pl.library)]
    assert [type(e).__name__ for e in events] == ["Failed"], events
    failed = events[0]
    assert failed.category is ErrorCategory.UNAVAILABLE
    assert failed.error.startswith("The library is unavailable. The library's database")
    _names_the_library(failed.text, store_down)
    assert "set Search to off" in failed.hint

    from rag.chat.render import failure_text  # the chat's message for it

    shown = failure_text(failed)
    assert shown.startswith("**⚠️ Not available right now:** The library is unavailable.") and failed.text in shown


async def test_v1_answers_503_unavailable_in_openai_shape(store_down):
    from rag.api import create_app

    app = create_app(warm_up=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as raw:
        for stream in (False, True):
            resp = await raw.post("/v1/chat/completions", json={
                "model": "rag:tiny", "stream": stream, "messages": [{"role": "user", "content": QUESTION}]})
            assert resp.status_code == 503, (stream, resp.text)
            body = resp.json()
            assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
            err = body["error"]
            assert (err["type"], err["code"]) == ("server_error", "unavailable"), err
            _names_the_library(err["message"], store_down)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        client = openai.AsyncOpenAI(base_url="http://127.0.0.1/v1", api_key="unused", http_client=http,
                                    max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="rag:tiny", messages=[{"role": "user", "content": QUESTION}])
    assert info.value.status_code == 503 and info.value.code == "unavailable"
    _names_the_library(info.value.message, store_down)


def _cli(uri: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = offline_env({**os.environ, "LRC_STORE": uri, "LRC_DATA_DIR": str(tmp_path / "cli-data"),
                       "LRC_ENGINE": "onnx", "LRC_MODEL": "tiny"})
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_cli_exits_69_unavailable_with_the_sentence(stopped_store, tmp_path):
    done = _cli(stopped_store, tmp_path, "ask", QUESTION)
    assert done.returncode == 69, done.stdout + done.stderr  # EX_UNAVAILABLE: try again when it is back
    assert "Error: The library is unavailable." in done.stderr and "Traceback" not in done.stderr, done.stderr
    _names_the_library(done.stderr, stopped_store)
    indexed = _cli(stopped_store, tmp_path, "index", str(REPO_ROOT / "README.md"))
    assert indexed.returncode == 69 and "not reachable" in indexed.stderr, indexed.stdout + indexed.stderr


# ------------------------------------------------------------------ the vocabulary and its tables
def test_every_category_is_mapped_once_by_each_renderer():
    from rag.api.errors import from_category, status_of
    from rag.chat.render import FAILURE_LABELS
    from rag.cmd import EXIT_STATUS

    for category in ErrorCategory:
        err = from_category(category, "x")
        assert err.status == status_of(category) and err.code and err.type, category
        assert FAILURE_LABELS[category] and EXIT_STATUS[category] > 0, category
    assert {from_category(c, "x").status for c in ErrorCategory} == {400, 404, 429, 500, 502, 503, 504}


def test_errors_carry_their_category():
    assert category_of(StoreUnavailable("down")) is ErrorCategory.UNAVAILABLE
    assert category_of(ModelMismatch("another model")) is ErrorCategory.INTERNAL  # waits for someone to act
    assert category_of(StoreTimeout("slow")) is ErrorCategory.TIMEOUT
    assert category_of(EngineTimeout("slow")) is ErrorCategory.TIMEOUT
    assert category_of(PromptTooLong("long")) is ErrorCategory.TOO_LONG
    assert category_of(KeyError("a bug")) is ErrorCategory.INTERNAL
    failed = pl.Failed.of(StoreTimeout("The library's database did not answer within 0.5 s."))
    assert failed.category is ErrorCategory.TIMEOUT and failed.error.startswith("The library's database")
