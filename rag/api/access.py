"""Who may call the API and how much they may send: the bearer key and the body limit.

With ``LRC_AUTH=none`` the key is ``LRC_API_KEY`` (compared in constant time; none set: anyone on the
address may call). With ``LRC_AUTH=password`` every request needs a user's own API key (rag.users,
``python -m rag users key NAME``; ``LRC_API_KEY`` is then not accepted) and is that user's request:
``check_key`` returns the name, and the answer searches only the shared files and that user's uploads.

Both are checked before the body is parsed: the key first, then the declared Content-Length, then the
bytes as they arrive (a body without a length, or lying about it, is cut off at the limit).
"""
from __future__ import annotations

import hmac
import json
import os
import threading
from pathlib import Path

from starlette.requests import Request

from rag.api.errors import APIError
from rag.config import settings
from rag.users import DB_NAME as USERS_DB, Users

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a long conversation fits many times over


def api_key() -> str:
    """The key every /v1 request must carry ("" = none required): ``settings().api_key`` when the
    settings have it, else the LRC_API_KEY environment variable."""
    key = getattr(settings(), "api_key", None)
    if key is None:
        key = os.environ.get("LRC_API_KEY", "")
    return str(key or "").strip()


def keys_required() -> bool:
    """Whether a /v1 request needs a key at all (users' keys, or LRC_API_KEY)."""
    return settings().auth == "password" or bool(api_key())


def _unauthorized(message: str, code: str) -> APIError:
    return APIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: Request, whose: str) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(f"This server requires an API key: send it as 'Authorization: Bearer KEY' ({whose}).",
                            "missing_api_key")
    return token.strip()


_users: dict[Path, Users] = {}
_users_lock = threading.Lock()


def users() -> Users:
    """The user database of the current settings (one instance per database file)."""
    path = settings().data_dir / USERS_DB
    with _users_lock:
        if path not in _users:
            _users[path] = Users(path)
        return _users[path]


def check_key(request: Request) -> str | None:
    """Raises a 401 APIError unless the request carries a valid key; returns the request's user
    (LRC_AUTH=password), else None."""
    if settings().auth == "password":
        token = _bearer(request, "your own key: `python -m rag users key NAME` on the server makes one")
        user = users().user_for_api_key(token)
        if user is None:
            raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
        return user
    key = api_key()
    if not key:
        return None
    token = _bearer(request, "the value of LRC_API_KEY on the server")
    if not hmac.compare_digest(token.encode(), key.encode()):
        raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
    return None


def _too_large() -> APIError:
    return APIError(413, f"The request body is larger than the limit of {MAX_BODY_BYTES:,} bytes.",
                    code="request_too_large")


async def read_json(request: Request) -> dict:
    """The JSON object in the body (at most MAX_BODY_BYTES), or a 400/413 APIError."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    if not body.strip():
        raise APIError(400, "The request body is empty: send a JSON object.", code="invalid_json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON ({exc}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return data
