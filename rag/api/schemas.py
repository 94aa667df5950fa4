"""The request bodies the API accepts (pydantic), and their validation errors as one readable sentence.

Fields the OpenAI API defines but this server does not use (``top_p``, ``seed``, ``user``, ``tools``...)
are accepted and ignored, so existing clients work unchanged. Message contents and ``stop`` are
checked by hand (:mod:`rag.api.chat`) for clearer messages than a union's validation errors.
"""
from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.api.errors import APIError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Any = None  # a string, a list of {"type": "text", "text": ...} parts, or null


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False  # null = false
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: Any = None  # a string or a list of up to 4 strings
    n: int | None = Field(None, ge=1)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: Any  # a string or a list of strings
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


M = TypeVar("M", bound=BaseModel)


def _param(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(model: type[M], data: dict) -> M:
    """``data`` as ``model``, or a 400 naming the first wrong parameter."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = _param(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            message = f"Missing required parameter: '{param}'."
        else:
            message = f"Invalid value for '{param}': {err.get('msg', 'not valid')}."
            if err.get("type") == "too_short" and param == "messages":
                message = "'messages' must hold at least one message."
        raise APIError(400, message, code="missing_required_parameter" if err.get("type") == "missing"
                       else "invalid_value", param=param or None) from None
