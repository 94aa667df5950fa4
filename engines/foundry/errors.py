"""What Foundry Local's error answers mean: an OpenAI-style error (an HTTP error response, or an
error event inside a stream) as an ``engines.base`` error whose hint says what to do."""
from __future__ import annotations

import json
import re

from engines.base import (EngineError, EngineUnavailable, GenerationFailed, ModelNotFound, ModelNotLoaded,
                          PromptTooLong)

_TOO_LONG = ("context length", "context window", "too long", "max_length", "maximum length", "too many tokens",
             "request length")


def error_text(body: object) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}}), else the raw text.
    ``body`` as ``openai``'s errors carry it (``APIError.body``): the object parsed from the JSON,
    else the response's text (None: no body)."""
    if body is None:
        return ""
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body, default=str)
    text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body).strip()
    try:
        data = json.loads(text)
    except ValueError:
        for line in text.splitlines():  # oatpp's plain-text errors: "message=..." among other lines
            if line.startswith("message="):
                return line[len("message="):].strip()[:300]
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for key in ("message", "detail", "title", "error"):
                if isinstance(err.get(key), str) and err[key]:
                    return err[key]
        elif isinstance(err, str):
            return err
    return text[:500]


def names_unknown_model(status: int, text: str, model_id: str | None) -> bool:
    """A 404 about the model (not about the route): the service does not know ``model_id``."""
    low = text.lower()
    return status == 404 and bool(model_id) and ("model" in low or model_id.lower() in low)


def classify(status: int, text: str, model_id: str | None, where: str,
             available: list[str] | None = None) -> EngineError:
    """The typed error for an error answer ``text`` with HTTP ``status`` to a request for ``model_id``
    at ``where``; ``available``: the ids the service lists, named when the model is unknown."""
    low = text.lower()
    if status in (401, 403):
        return EngineUnavailable(f"Foundry Local refused the request ({status}: {text}).",
                                 "Check FOUNDRY_API_KEY.")
    if names_unknown_model(status, text, model_id):
        return ModelNotFound(f"Foundry Local has no model '{model_id}' ({text}).",
                             f"Available: {', '.join(available or []) or 'none'}. Set FOUNDRY_MODEL to one of them.")
    if status == 404:
        return EngineUnavailable(f"There is no OpenAI-compatible API at {where} (HTTP 404: {text}).",
                                 "FOUNDRY_BASE_URL should end in /v1 (desktop service) or "
                                 "/catalogs/local/v1 (`make foundry`).")
    if "not loaded" in low or "must be loaded" in low:
        return ModelNotLoaded(f"The model '{model_id}' is not loaded in Foundry Local.",
                              "Load it (`foundry model load <alias>` with the desktop app), "
                              "or restart `make foundry`, which loads its model.")
    if any(k in low for k in _TOO_LONG):
        prompt_tokens = context = None
        if m := re.search(r"\((\d+) input", text):
            prompt_tokens = int(m.group(1))
        if m := re.search(r"context length of (\d+)", text):
            context = int(m.group(1))
        told = f" ({prompt_tokens} prompt tokens; the model holds {context})" if prompt_tokens and context else ""
        return PromptTooLong(f"The question and its passages are too long for the model{told}.",
                             "Ask a shorter question, start a new chat, retrieve fewer passages "
                             "or lower the answer length.", prompt_tokens=prompt_tokens,
                             context_length=context)
    if status >= 500:
        return GenerationFailed(f"Foundry Local failed with HTTP {status}: {text}.",
                                "Try again; if it keeps failing, restart the service.")
    return GenerationFailed(f"Foundry Local rejected the request (HTTP {status}: {text}).",
                            "Check the chat settings (model, max tokens, temperature).")
