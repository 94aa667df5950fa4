"""Model ids of the API and what they mean.

    rag                      the configured default (LRC_ENGINE, LRC_MODEL)
    rag:auto                 the routing engine (routing.toml)
    rag:<model id>           a model of the in-process engine, e.g. rag:smollm2-135m-instruct-int8
                             (its aliases work too: rag:smollm2, rag:tiny)
    rag:<engine>/<model id>  a model of another engine, e.g. rag:foundry/Phi-4-mini-instruct-generic-cpu:5

``GET /v1/models`` lists every model an engine reports within LIST_TIMEOUT seconds (an engine that
is down or slow is left out, never an error) plus ``rag`` and ``rag:auto``. The embedding model has
its own names (EMBED_IDS and the embedder's name) and is not listed as a chat model.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from engines import registry
from engines.base import EngineError, ErrorCategory, ModelNotFound
from rag import pipeline
from rag.api.errors import from_category, from_exception, not_found
from rag.config import settings

log = logging.getLogger("local-rag-chat.api")

PREFIX = "rag"
IN_PROCESS = registry.IN_PROCESS  # the engine whose models need no "<engine>/" in their id
EMBED_IDS = ("rag", "rag:embed")  # besides settings().embed_model
LIST_TIMEOUT = 3.0  # seconds an engine may take to list its models
RESOLVE_TIMEOUT = 15.0  # seconds an engine may take to say whether it has a model
OWNER = "local-rag-chat"
_STARTED = int(time.time())


@dataclass
class ModelChoice:
    engine: str
    model: str  # "" = the engine's default


def model_id(engine: str, model: str) -> str:
    return f"{PREFIX}:{model}" if engine == IN_PROCESS else f"{PREFIX}:{engine}/{model}"


def parse(model: str) -> ModelChoice | None:
    """The engine and model an id names; None when it is not one of ours."""
    model = (model or "").strip()
    if model == PREFIX:
        return ModelChoice(settings().engine, settings().model)
    if not model.startswith(PREFIX + ":"):
        return None
    rest = model[len(PREFIX) + 1:]
    if rest == pipeline.AUTO:
        return ModelChoice(pipeline.AUTO, "")
    engine, sep, name = rest.partition("/")
    if sep and engine in registry.ENGINES:
        return ModelChoice(engine, name) if name else None
    return ModelChoice(IN_PROCESS, rest) if rest else None


def _looks_like_path(model: str) -> bool:
    return any(c in model for c in "/\\") or model.startswith((".", "~"))


async def resolve(requested: str, target: ModelChoice) -> None:
    """Raise the right APIError unless ``target`` can answer: unknown model 404, engine down 503.
    (The routing engine is checked by the pipeline: it answers with whichever target can.)"""
    if target.engine == pipeline.AUTO:
        return
    try:
        eng = pipeline.engine(target.engine)
        if target.model and not eng.needs_service and _looks_like_path(target.model):
            # a local engine resolves folder paths too: a client may only name the models it lists
            listed = {m.id for m in await eng.list_models()}
            if target.model not in listed:
                raise ModelNotFound(f"Unknown model '{target.model}'.")
        await asyncio.wait_for(eng.resolve_model(target.model or None), RESOLVE_TIMEOUT)
    except ModelNotFound as err:
        raise not_found(requested, err.message.rstrip(".") + ".") from None
    except asyncio.TimeoutError:
        raise from_category(ErrorCategory.UNAVAILABLE,
                            f"The engine of '{requested}' did not answer within {RESOLVE_TIMEOUT:g} s.") from None
    except EngineError as err:
        raise from_exception(err) from None


def entry(id_: str) -> dict:
    return {"id": id_, "object": "model", "created": _STARTED, "owned_by": OWNER}


async def _engine_ids(name: str) -> list[str]:
    try:
        eng = pipeline.engine(name)
        models = await asyncio.wait_for(eng.list_models(), LIST_TIMEOUT)
    except Exception as exc:  # down, slow or broken: left out of the list
        log.info("models of engine %s left out of /v1/models: %s", name, exc)
        return []
    return [model_id(name, m.id) for m in models]


async def listing() -> list[dict]:
    ids = [PREFIX, f"{PREFIX}:{pipeline.AUTO}"]
    for found in await asyncio.gather(*(_engine_ids(name) for name in registry.ENGINES)):
        ids += found
    return [entry(i) for i in dict.fromkeys(ids)]


def embed_ids() -> set[str]:
    return {*EMBED_IDS, settings().embed_model}
