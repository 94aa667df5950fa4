"""Every failure of the API as an OpenAI error: ``{"error": {"message", "type", "param", "code"}}`` with
its HTTP status, whatever raised it (a bad request, an engine error, the pipeline's ``Failed`` event).

Routes raise :class:`APIError`; :class:`OpenAIRoute` (the router's route class) turns it into the
response, and anything else into a short 500 (logged, never a traceback to the client). The route
class does this itself, so the errors keep their shape wherever the router is mounted (an app's own
exception handlers are not needed).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("local-rag-chat.api")

INVALID = "invalid_request_error"
SERVER = "server_error"


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


# the pipeline's Failed.kind (the engine error's class name) -> status, type, code, param
_KINDS: dict[str, tuple[int, str, str, str | None]] = {
    "PromptTooLong": (400, INVALID, "context_length_exceeded", "messages"),
    "ModelNotFound": (404, INVALID, "model_not_found", "model"),
    "ModelNotLoaded": (503, SERVER, "model_not_loaded", "model"),
    "EngineUnavailable": (503, SERVER, "engine_unavailable", None),
    "RoutingFailed": (503, SERVER, "engine_unavailable", None),
    "EngineTimeout": (504, SERVER, "engine_timeout", None),
    "StreamBroken": (502, SERVER, "stream_broken", None),
    "GenerationFailed": (500, SERVER, "generation_failed", None),
    "ValueError": (400, INVALID, "invalid_value", "messages"),
}


def from_kind(kind: str, message: str) -> APIError:
    """The API error for a pipeline ``Failed`` event (``kind`` = the exception class name)."""
    status, type_, code, param = _KINDS.get(kind, (500, SERVER, "internal_error", None))
    return APIError(status, message, type_, code, param)


def from_exception(err: BaseException) -> APIError:
    """An engine error (matched by its class or a base class) or anything else (a short 500)."""
    text = getattr(err, "user_text", None)
    for cls in type(err).__mro__:
        if cls.__name__ in _KINDS:
            return from_kind(cls.__name__, text() if callable(text) else str(err))
    return internal(err)


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
