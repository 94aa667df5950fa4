"""The request guard (rag.web.guard) on a small real ASGI app, rule by rule; tests/security attacks it on the
real servers."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.testclient import TestClient

from rag.web import guard

HOST = "127.0.0.1:8000"
SELF = f"http://{HOST}"


def make_app(monkeypatch, origins: str = "", hosts: str = "", bind: str = "") -> TestClient:
    monkeypatch.setenv("LRC_ALLOWED_ORIGINS", origins)
    monkeypatch.setenv("LRC_ALLOWED_HOSTS", hosts)
    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"],
                       allow_headers=["*"])  # what Chainlit installs: the guard must take it out

    @app.get("/page")
    def page():
        return HTMLResponse("<html><script>var a = 1;</script></html>")

    @app.post("/v1/thing")
    async def thing():
        return {"ok": True}

    @app.post("/login")
    async def login():
        return {"ok": True}

    @app.get("/project/file/{name}")
    def file(name: str, session_id: str = ""):
        kind = {"a.html": "text/html", "a.svg": "image/svg+xml", "a.pdf": "application/pdf"}[name]
        return Response(b"<script>alert(1)</script>", media_type=kind)

    @app.get("/plain")
    def plain():
        return PlainTextResponse("hi")

    policy = guard.install(app, bind)
    policy.script_hashes = guard.inline_script_hashes("<script>var a = 1;</script>")
    return TestClient(app, base_url=SELF)


def test_host_allow_list(monkeypatch):
    client = make_app(monkeypatch, hosts="chat.example, Proxy.Local", bind="10.1.2.3")
    assert client.get("/plain").status_code == 200
    for host in ("localhost:8000", "[::1]:8000", "chat.example", "proxy.local:443", "10.1.2.3:8000"):
        assert client.get("/plain", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "chat.example.evil", "0.0.0.0:8000"):
        answer = client.get("/plain", headers={"Host": host})
        assert answer.status_code == 421 and "LRC_ALLOWED_HOSTS" in answer.json()["detail"], host


def test_other_origins_refused_and_never_reflected(monkeypatch):
    client = make_app(monkeypatch)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8000.evil.example"):
        for answer in (client.get("/plain", headers={"Origin": origin}),
                       client.post("/v1/thing", json={}, headers={"Origin": origin}),
                       client.options("/v1/thing", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})):
            assert answer.status_code == 403, (origin, answer.status_code)
            assert "access-control-allow-origin" not in answer.headers
    assert client.post("/v1/thing", json={}, headers={"Origin": SELF}).status_code == 200
    ok = client.get("/plain", headers={"Origin": SELF})
    assert ok.status_code == 200 and "access-control-allow-origin" not in ok.headers


def test_fetch_metadata_without_origin(monkeypatch):
    client = make_app(monkeypatch)
    cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert client.get("/plain", headers=cross).status_code == 403  # <img>/<script> from another site
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/page", headers=nav).status_code == 200  # a link to the app still opens it
    assert client.get("/plain", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_allowed_origin_gets_cors(monkeypatch):
    client = make_app(monkeypatch, origins="https://webui.example")
    pre = client.options("/v1/thing", headers={"Origin": "https://webui.example",
                                                "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://webui.example"
    answer = client.post("/v1/thing", json={}, headers={"Origin": "https://webui.example"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://webui.example"
    assert client.post("/v1/thing", json={}, headers={"Origin": "https://other.example"}).status_code == 403


def test_state_changes_must_be_json(monkeypatch):
    client = make_app(monkeypatch)
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = client.post("/v1/thing", content=b'{"a": 1}', headers={"Content-Type": kind})
        assert answer.status_code == 415, kind
        assert answer.json()["error"]["code"] == "unsupported_media_type"  # /v1: OpenAI's error shape
    assert client.post("/v1/thing", content=b'{"a": 1}', headers={"Content-Type": "application/json"}).status_code == 200
    assert client.post("/v1/thing").status_code == 200  # no body: nothing a form could send
    assert client.post("/login", data={"username": "a"}, headers={"Origin": SELF}).status_code == 200


def test_session_ids_are_uuids(monkeypatch):
    client = make_app(monkeypatch)
    for bad in ("/tmp/x", "../../etc", "abc", "00000000-0000-0000-0000-00000000000g", "%2Ftmp"):
        assert client.get(f"/project/file/a.pdf?session_id={bad}").status_code == 400, bad
    assert client.get("/project/file/a.pdf?session_id=6f1c2a1e-3b7d-4c1e-9a57-0c4f3a1b2d3e").status_code == 200
    assert guard.is_uuid("6F1C2A1E-3B7D-4C1E-9A57-0C4F3A1B2D3E")
    assert not guard.is_uuid("6f1c2a1e3b7d4c1e9a570c4f3a1b2d3e")  # the folder name must be the canonical form


def test_headers_pages_and_active_files(monkeypatch):
    client = make_app(monkeypatch)
    page = client.get("/page")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'sha256-" in csp
    assert "connect-src 'self'" in csp and "img-src 'self' data: blob:" in csp and "http" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    for name in ("a.html", "a.svg"):
        got = client.get(f"/project/file/{name}")
        assert got.headers["content-disposition"] == "attachment", name
        assert got.headers["content-security-policy"].startswith("sandbox"), name
    pdf = client.get("/project/file/a.pdf")
    assert "content-disposition" not in pdf.headers and pdf.headers["x-content-type-options"] == "nosniff"


def test_api_docs_are_gone(monkeypatch):
    client = make_app(monkeypatch)
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path


def test_inline_script_hash_is_the_browsers():
    # the CSP hash of "var a = 1;" as browsers compute it (base64 of its sha256)
    import base64
    import hashlib

    want = "sha256-" + base64.b64encode(hashlib.sha256(b"var a = 1;").digest()).decode()
    assert guard.inline_script_hashes("<p><script>var a = 1;</script><script src=x></script>") == (want,)


@pytest.mark.parametrize("value,name", [("Example.COM:80", "example.com"), ("[::1]:8000", "::1"),
                                        ("::1", "::1"), ("localhost", "localhost")])
def test_host_name(value, name):
    assert guard.host_name(value) == name
