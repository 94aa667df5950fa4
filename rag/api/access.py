"""Who may call the API and how much they may send: the bearer key (``LRC_API_KEY``) and the body limit.

Both are checked before the body is parsed: the key first (compared in constant time), then the
declared Content-Length, then the bytes as they arrive (a body without a length, or lying about it,
is cut off at the limit).
"""
from __future__ import annotations

import hmac
import json
import os

from starlette.requests import Request

from rag.api.errors import APIError
from rag.config import settings

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a long conversation fits many times over


def api_key() -> str:
    """The key every /v1 request must carry ("" = none required): ``settings().api_key`` when the
    settings have it, else the LRC_API_KEY environment variable."""
    key = getattr(settings(), "api_key", None)
    if key is None:
        key = os.environ.get("LRC_API_KEY", "")
    return str(key or "").strip()


def check_key(request: Request) -> None:
    key = api_key()
    if not key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "This server requires an API key: send it as 'Authorization: Bearer KEY' "
                            "(the value of LRC_API_KEY on the server).", code="missing_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


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
