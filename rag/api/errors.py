"""Every failure of the API as an OpenAI error: ``{"error": {"message", "type", "param", "code"}}`` with
its HTTP status, whatever raised it (a bad request, an engine error, the pipeline's ``Failed`` event: its
``ErrorCategory`` decides the status, never a class name).

Routes raise :class:`APIError`; :class:`OpenAIRoute` (the router's route class) turns it into the
response, and anything else into a short 500 (logged, never a traceback to the client). The route
class does this itself, so the errors keep their shape wherever the router is mounted (an app's own
exception handlers are not needed).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from engines.base import ErrorCategory, category_of

log = logging.getLogger("local-rag-chat.api")

INVALID = "invalid_request_error"
SERVER = "server_error"
REQUESTS = "requests"  # OpenAI's type of a rate limit on requests


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = INVALID, code: str | None = None,
                 param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def not_found(model: str, why: str = "") -> APIError:
    return APIError(404, f"The model '{model}' does not exist{': ' + why if why else '.'} "
                         "GET /v1/models lists the models this server answers with.",
                    code="model_not_found", param="model")


# an error's category -> status, type, code, param: the one place /v1 reads what went wrong
_CATEGORIES: dict[ErrorCategory, tuple[int, str, str, str | None]] = {
    ErrorCategory.BAD_REQUEST: (400, INVALID, "invalid_value", "messages"),
    ErrorCategory.TOO_LONG: (400, INVALID, "context_length_exceeded", "messages"),
    ErrorCategory.NOT_FOUND: (404, INVALID, "model_not_found", "model"),
    ErrorCategory.UNAVAILABLE: (503, SERVER, "unavailable", None),
    ErrorCategory.TIMEOUT: (504, SERVER, "timeout", None),
    ErrorCategory.INTERRUPTED: (502, SERVER, "interrupted", None),
    ErrorCategory.BUSY: (429, REQUESTS, "rate_limit_exceeded", None),  # with Retry-After
    ErrorCategory.INTERNAL: (500, SERVER, "internal_error", None),
}


def from_category(category: ErrorCategory, message: str, retry_after: float | None = None) -> APIError:
    """The API error for a pipeline ``Failed`` event (or any error of that category); ``retry_after``
    (seconds, a full queue's) becomes the Retry-After header."""
    status, type_, code, param = _CATEGORIES[ErrorCategory(category)]
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return APIError(status, message, type_, code, param, headers)


def status_of(category: ErrorCategory) -> int:
    """The HTTP status of an error category (for the other routes on the server: /browser)."""
    return _CATEGORIES[ErrorCategory(category)][0]


def from_exception(err: BaseException) -> APIError:
    """An error that says its category (engine and storage errors), or anything else (a short 500)."""
    if getattr(type(err), "category", None) is None:
        return internal(err)
    text = getattr(err, "user_text", None)
    return from_category(category_of(err), text() if callable(text) else str(err), getattr(err, "retry_after", None))


def internal(err: BaseException) -> APIError:
    log.error("API request failed", exc_info=err)
    return APIError(500, f"Internal server error ({type(err).__name__}); the server log has the details.",
                    SERVER, "internal_error")


class OpenAIRoute(APIRoute):
    """Answers APIError (and any unexpected exception) in the OpenAI error shape."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except APIError as err:
                return err.response()
            except Exception as err:  # never a traceback to the client
                return internal(err).response()

        return route
