"""An OpenAI-compatible API over the RAG pipeline: ``/v1/models``, ``/v1/chat/completions`` (streamed or
not), ``/v1/embeddings``. Any OpenAI client can talk to the library:

    client = OpenAI(base_url="http://127.0.0.1:8001/v1", api_key=os.environ.get("LRC_API_KEY", "none"))
    client.chat.completions.create(model="rag:smollm2", messages=[{"role": "user", "content": "..."}])

``router`` is a FastAPI APIRouter; ``mount(app)`` adds it to an existing app (the chat's server) ahead
of any catch-all route; ``create_app()`` is the stand-alone app of ``python -m rag serve``.

    models.py   model ids (rag, rag:auto, rag:<model>, rag:<engine>/<model>), listing, resolving
    chat.py     the chat completion: messages -> question + history, the answer, SSE streaming
    render.py   the pipeline's events -> the text the client receives, the sources field, stop strings
    access.py   the API key (LRC_API_KEY, or a user's own with LRC_AUTH=password) and the body size limit
    schemas.py  request bodies; validation errors as one readable sentence
    errors.py   the OpenAI error shape, statuses, the route class that applies it
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, FastAPI

from rag.api.access import MAX_BODY_BYTES, api_key
from rag.api.routes import router

__all__ = ["router", "create_app", "mount", "api_key", "MAX_BODY_BYTES"]

log = logging.getLogger("local-rag-chat.api")


def mount(app: FastAPI) -> None:
    """Add the /v1 routes to ``app`` in front of its existing routes (Chainlit's catch-all
    ``GET /{full_path:path}`` would otherwise answer GET /v1/models with its web page)."""
    prepend(app, router)


def prepend(app: FastAPI, routes: APIRouter) -> None:
    """Include ``routes`` in ``app`` before the routes it already has."""
    before = len(app.router.routes)
    app.include_router(routes)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added


async def _warm_engine() -> None:
    """Load the default engine's model (the first request would otherwise wait for it)."""
    from rag import pipeline

    try:
        await pipeline.warm_engine()
    except Exception as exc:  # the first request reports it properly
        log.warning("warm-up of the default engine failed: %s", exc)


def create_app(warm_up: bool = True, host: str = "") -> FastAPI:
    """The stand-alone API server's app (``host``: the address it binds, also accepted as a Host name): the
    router behind the request guard, the library loaded before the first request is accepted, the default
    model loading in the background, engines closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        from engines import registry

        task = None
        if warm_up:
            from rag import pipeline

            try:
                await pipeline.warm_library()
            except Exception as exc:  # requests report it
                log.warning("loading the library failed: %s", exc)
            task = asyncio.ensure_future(_warm_engine())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await registry.close_all()

    from rag.web import guard

    app = FastAPI(title="Local RAG Chat API", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    guard.install(app, host)  # Host and Origin checks, JSON only, headers (docs/SECURITY.md)
    return app
