"""LRC_AUTH=password on the real API server (`python -m rag serve`, tests/api/api_server.py): every /v1
request needs a user's own API key, and an answer searches only the shared files and that user's
uploads. Alice and Bob each have an upload with a made-up fact (stored where rag.owners puts a user's
uploads, indexed with the real library as that user's); the quote-only answer style keeps the model out of it."""
from __future__ import annotations

import json

import httpx
import pytest

import api_server as support
from rag import owners
from rag.library import Library
from rag.users import Users

pytestmark = pytest.mark.slow

FACTS = {
    "alice": ("brindlewick.md", "# The Brindlewick clock\n\nThe Brindlewick clock must be wound with a silver key "
              "every 23 days. Its pendulum is carved from driftwood, and it chimes thirteen times at dawn.\n",
              "How often must the Brindlewick clock be wound?", "23 days"),
    "bob": ("marrowgate.md", "# The Marrowgate bees\n\nThe Marrowgate bees are fed with clover syrup every 11 "
            "hours. Their hives are painted saffron yellow, and their queen is called Ottoline.\n",
            "How often are the Marrowgate bees fed?", "11 hours"),
}
OTHER = {"alice": "bob", "bob": "alice"}


@pytest.fixture(scope="module")
def users_server(tmp_path_factory, smollm2_dir, tiny_model_dir):
    root = tmp_path_factory.mktemp("api-users")
    data = root / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRC_DATA_DIR", str(data))
        lib = Library(data / "index")
        for name, (file, text, _, _) in FACTS.items():
            folder = owners.uploads_dir(name) / "0f3c9a"  # as pipeline.store_upload lays them out
            folder.mkdir(parents=True)
            (folder / file).write_text(text)
            assert lib.ingest([folder / file], owner=name).added  # the owner is recorded in the library
        lib.backend.close()
        users = Users()
        keys = {name: users.add(name, f"{name}'s password") for name in FACTS}
        assert users.path == data / "users.sqlite3"
        server = support.start(root, key=keys["alice"],
                               env_extra={"LRC_AUTH": "password", "LRC_ANSWER_STYLE": "quote"})
    try:
        yield server, users, keys
    finally:
        server.stop()


def ask(server, key: str, question: str, stream: bool = False, **extra) -> tuple[str, list[dict]]:
    """(the answer's text, its sources) through raw HTTP, streamed or not."""
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], "stream": stream, **extra}
    headers = {"Authorization": f"Bearer {key}"}
    if not stream:
        resp = httpx.post(f"{server.url}/chat/completions", json=body, headers=headers, timeout=120)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        return data["choices"][0]["message"]["content"], data["sources"]
    text, sources = "", None
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body, headers=headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: "):])
            assert "error" not in chunk, chunk
            text += chunk["choices"][0]["delta"].get("content") or ""
            sources = chunk.get("sources", sources)
    assert sources is not None, text
    return text, sources


def _files(sources: list[dict]) -> set[str]:
    return {s["file"] for s in sources}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("owner", ["alice", "bob"])
def test_a_users_upload_answers_only_that_user(users_server, owner, stream):
    server, _, keys = users_server
    file, _, question, fact = FACTS[owner]
    text, sources = ask(server, keys[owner], question, stream)
    assert file in _files(sources) and fact in text, (text, sources)

    text, sources = ask(server, keys[OTHER[owner]], question, stream)
    assert file not in _files(sources), sources
    assert fact not in text and all(fact not in s["text"] for s in sources), (text, sources)


def test_the_bodys_user_field_does_not_choose_the_user(users_server):
    server, _, keys = users_server
    file, _, question, fact = FACTS["alice"]
    text, sources = ask(server, keys["bob"], question, user="alice")
    assert file not in _files(sources) and fact not in text, (text, sources)


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_shared_files_answer_every_user(users_server, user):
    server, _, keys = users_server
    text, sources = ask(server, keys[user], support.QUESTION)
    assert "quillfeather.md" in _files(sources) and "17 days" in text, (text, sources)


@pytest.mark.parametrize("route, method, body", [
    ("models", "GET", None),
    ("chat/completions", "POST", {"model": "rag", "messages": [{"role": "user", "content": support.QUESTION}]}),
    ("embeddings", "POST", {"model": "rag:embed", "input": "x"}),
])
def test_requests_without_a_users_key_are_401(users_server, route, method, body):
    server, _, keys = users_server

    def call(headers: dict) -> httpx.Response:
        return httpx.request(method, f"{server.url}/{route}", json=body, headers=headers, timeout=60)

    for headers, code in [({}, "missing_api_key"), ({"Authorization": "Basic abc"}, "missing_api_key"),
                          ({"Authorization": "Bearer lrc-not-a-key"}, "invalid_api_key"),
                          ({"Authorization": f"Bearer {support.KEY}"}, "invalid_api_key"),  # LRC_API_KEY: not a user's
                          ({"Authorization": f"Bearer {keys['alice']}x"}, "invalid_api_key")]:
        resp = call(headers)
        assert resp.status_code == 401, (headers, resp.text)
        err = resp.json()["error"]
        assert err["code"] == code and err["type"] == "invalid_request_error" and err["message"], err
        assert resp.headers.get("www-authenticate") == "Bearer"
    assert call({"Authorization": f"Bearer {keys['bob']}"}).status_code == 200


def test_keys_follow_the_user_database_while_the_server_runs(users_server):
    server, users, _ = users_server
    key = users.add("carol", "carol's password")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/models", headers=headers, timeout=30).status_code == 200
    new = users.new_api_key("carol")
    assert httpx.get(f"{server.url}/models", headers=headers, timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {new}"}
    assert httpx.get(f"{server.url}/models", headers=headers, timeout=30).status_code == 200
    assert users.remove("carol")
    resp = httpx.get(f"{server.url}/models", headers=headers, timeout=30)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
