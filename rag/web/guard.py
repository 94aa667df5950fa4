"""The guard in front of every route and socket: one ASGI middleware, outermost, on the chat's server
(app.py) and on `rag serve`'s API server. Nothing reaches a route or the Socket.IO server without it.

In the order it checks (docs/SECURITY.md says why each exists):

1. **Host allow-list** (DNS rebinding): the ``Host`` header must name this machine (localhost,
   127.0.0.1, [::1]), the address the server was told to bind, or a name in ``LRC_ALLOWED_HOSTS``.
2. **Origin**: a browser request that says where it comes from (``Origin``, or ``Sec-Fetch-Site``) must
   come from the app's own origin (scheme, host and port of the request itself) or from an origin in
   ``LRC_ALLOWED_ORIGINS``. Only a top-level navigation (a link to the app) may come from elsewhere.
   Clients that are not browsers (the OpenAI SDK, curl, Open WebUI's server) send neither header.
   The Socket.IO handshake (HTTP and WebSocket) is checked the same way.
3. **JSON only** for requests with a body that change state: ``application/json``, except the two forms
   Chainlit's page posts (the login form, file uploads) and the Socket.IO transport (origin-checked above).
   A cross-site HTML form can send neither JSON nor a same-origin ``Origin``.
4. **Session ids are UUIDs**: a ``session_id`` query parameter of any other shape is refused (Chainlit
   turns session ids into folder names).
5. **Headers on every answer**: ``nosniff``, no framing, no referrer to other sites, a
   Content-Security-Policy on every HTML page (scripts, images, fonts and connections from the app's
   origin only), and downloads of active types (HTML, SVG, XML, scripts) from file routes as
   attachments under a sandboxing policy.

CORS: only origins in ``LRC_ALLOWED_ORIGINS`` get ``Access-Control-Allow-*`` answers (never ``*``, never
a reflected origin); a preflight from any other origin is refused by rule 2.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from rag.config import settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# paths whose non-JSON bodies Chainlit's own page sends (form login, multipart upload) or its transport needs
FORM_PATHS = ("/login", "/project/file", "/ws/socket.io")
# routes that hand out stored files (uploads, a chat's source elements)
FILE_PATHS = ("/project/file/", "/history/file/")
ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                          "text/javascript", "application/javascript", "application/x-javascript",
                          "text/xsl", "application/pdf+html", "multipart/x-mixed-replace"})
SANDBOX = "sandbox; default-src 'none'"
# API documentation would publish every route and its parameters: not found, on every server
HIDDEN_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
BASE_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"same-origin"))


def page_policy(script_hashes: tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy of the app's HTML pages. Chainlit's page compiles the Library view's
    custom element in the browser ('unsafe-eval'); the /browser page runs ONNX Runtime Web
    ('wasm-unsafe-eval', workers from blob:). Styles may be inline (React sets them); they load nothing
    from elsewhere because img-src, font-src and connect-src are 'self'."""
    hashes = " ".join(f"'{h}'" for h in script_hashes)
    return ("default-src 'self'; "
            f"script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval' {hashes}".rstrip() + "; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
            "connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; frame-src 'self' blob:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


_INLINE_SCRIPT = re.compile(r"<script>([^<]*)</script>")  # no nested tags: linear


def inline_script_hashes(html: str) -> tuple[str, ...]:
    """CSP hashes ('sha256-...') of the inline <script> blocks of a page the server itself makes."""
    import base64

    return tuple("sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                 for body in _INLINE_SCRIPT.findall(html))


def host_name(value: str) -> str:
    """The host part of a Host header or an origin's netloc, lower case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value


def is_uuid(value: str) -> bool:
    """Chainlit's ids are uuid4 strings; nothing else may name a session or a chat."""
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except (ValueError, AttributeError, TypeError):
        return False


@dataclass
class Policy:
    """What the guard allows; built from the settings when the server starts."""
    hosts: frozenset[str]
    origins: frozenset[str]
    script_hashes: tuple[str, ...] = ()
    json_only: bool = True

    @classmethod
    def from_settings(cls, bind_host: str = "") -> "Policy":
        s = settings()
        hosts = set(LOCAL_HOSTS) | {host_name(h) for h in s.allowed_hosts}
        bind = host_name(bind_host) if bind_host else ""
        if bind and not _unspecified(bind):
            hosts.add(bind)
        origins = frozenset(o.lower().rstrip("/") for o in s.allowed_origins if o.strip() not in ("*", "null"))
        return cls(frozenset(hosts), origins)


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class Refused(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _same_origin(origin: str, host: str) -> bool:
    """The page's origin names the host (and port) this request was sent to. The scheme is not compared:
    behind a TLS proxy the request reaches the app as http."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == host.lower()


class Guard:
    """The ASGI middleware (see the module's docstring). ``policy`` may be replaced while serving
    (app.py adds the page's inline-script hashes once it has made the page)."""

    def __init__(self, app, policy: Policy | None = None):
        self.app = app
        self.policy = policy or Policy.from_settings()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            cors_origin = self.check(scope, headers)
        except Refused as refused:
            return await self._refuse(scope, receive, send, refused)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if cors_origin and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            return await self._preflight(send, cors_origin, headers)
        return await self.app(scope, receive, self._headers_added(scope, send, cors_origin))

    # ------------------------------------------------------------------ the checks
    def check(self, scope, headers: dict) -> str | None:
        """Raises Refused, or returns the allowed cross origin (for CORS headers) or None."""
        host = headers.get("host", "")
        if not host or host_name(host) not in self.policy.hosts:
            raise Refused(421 if host else 400, "This server does not answer to that host name. Use "
                          "http://127.0.0.1 or localhost, or add the name to LRC_ALLOWED_HOSTS on the server.",
                          "host_not_allowed")
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path.rstrip("/") in HIDDEN_PATHS:
            raise Refused(404, "Not found.", "not_found")
        cross = self._origin(headers, host, method)
        if scope["type"] == "http" and method not in SAFE_METHODS and self.policy.json_only:
            self._body_kind(headers, path)
        query = scope.get("query_string", b"").decode("latin-1")
        if "session_id" in query:
            for key, value in parse_qsl(query, keep_blank_values=True):
                if key == "session_id" and not is_uuid(value):
                    raise Refused(400, "Not a session id.", "invalid_session_id")
        return cross

    def _origin(self, headers: dict, host: str, method: str) -> str | None:
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.strip().lower().rstrip("/")
            if _same_origin(origin, host):
                return None
            if origin in self.policy.origins:
                return origin
            raise Refused(403, "Requests from other websites are refused (their origin is not in "
                          "LRC_ALLOWED_ORIGINS).", "origin_not_allowed")
        site = headers.get("sec-fetch-site", "")
        if site in ("cross-site", "same-site"):
            navigation = headers.get("sec-fetch-mode") == "navigate" and method in ("GET", "HEAD")
            if not navigation:
                raise Refused(403, "Requests from other websites are refused.", "origin_not_allowed")
        return None

    def _body_kind(self, headers: dict, path: str) -> None:
        length = headers.get("content-length", "")
        has_body = "transfer-encoding" in headers or (length not in ("", "0"))
        if not has_body:
            return
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            return
        if any(path == p or path.startswith(p + "/") for p in FORM_PATHS):
            return
        raise Refused(415, "Send the request body as JSON (Content-Type: application/json).", "unsupported_media_type")

    # ------------------------------------------------------------------ answers
    async def _refuse(self, scope, receive, send, refused: Refused) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused.code})
            return
        if scope.get("path", "").startswith("/v1"):
            body = {"error": {"message": refused.message, "type": "invalid_request_error", "param": None,
                              "code": refused.code}}
        else:
            body = {"detail": refused.message, "code": refused.code}
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": refused.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                *BASE_HEADERS]})
        await send({"type": "http.response.body", "body": data})

    async def _preflight(self, send, origin: str, headers: dict) -> None:
        allow = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin"),
                 (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
                 (b"access-control-allow-headers",
                  headers.get("access-control-request-headers", "authorization, content-type").encode("latin-1")),
                 (b"access-control-allow-credentials", b"true"), (b"access-control-max-age", b"600")]
        await send({"type": "http.response.start", "status": 204, "headers": [*allow, *BASE_HEADERS]})
        await send({"type": "http.response.body", "body": b""})

    def _headers_added(self, scope, send, cors_origin: str | None):
        path = scope.get("path", "")
        file_route = path.startswith(FILE_PATHS)

        async def wrapped(message):
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", [])
                       if not k.lower().startswith(b"access-control-")]
                names = {k.lower() for k, _ in out}
                out += [h for h in BASE_HEADERS if h[0] not in names]
                kind = next((v.decode("latin-1") for k, v in out if k.lower() == b"content-type"), "")
                kind = kind.split(";", 1)[0].strip().lower()
                if file_route and kind in ACTIVE_TYPES:
                    out = [(k, v) for k, v in out if k.lower() not in (b"content-disposition", b"content-security-policy")]
                    out += [(b"content-disposition", b"attachment"), (b"content-security-policy", SANDBOX.encode())]
                elif kind == "text/html" and b"content-security-policy" not in names:
                    out.append((b"content-security-policy", page_policy(self.policy.script_hashes).encode()))
                if cors_origin:
                    out += [(b"access-control-allow-origin", cors_origin.encode()), (b"vary", b"Origin"),
                            (b"access-control-allow-credentials", b"true")]
                message = {**message, "headers": out}
            await send(message)

        return wrapped


def install(app, bind_host: str = "") -> Policy:
    """Put the guard outermost on a Starlette/FastAPI ``app`` (before it serves), drop any CORS middleware
    it carries (the guard answers CORS itself) and its API documentation routes. Returns the policy the
    guard reads on every request (the caller may extend it in place)."""
    from starlette.middleware.cors import CORSMiddleware

    app.user_middleware[:] = [m for m in app.user_middleware if getattr(m, "cls", None) is not CORSMiddleware]
    policy = Policy.from_settings(bind_host)
    app.add_middleware(Guard, policy=policy)
    drop_docs(app)
    return policy


def drop_docs(app) -> None:
    """No /openapi.json, /docs or /redoc: they would publish every route and its parameters."""
    doomed = {app.openapi_url, app.docs_url, app.redoc_url, getattr(app, "swagger_ui_oauth2_redirect_url", None)}
    doomed.discard(None)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in doomed]
    app.openapi_url = app.docs_url = app.redoc_url = None
