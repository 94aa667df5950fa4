"""The /v1 routes: models, chat completions, embeddings (an OpenAI-compatible API over rag.pipeline).

Every route checks the API key (LRC_API_KEY, or with LRC_AUTH=password a user's own key) and reads its body itself (within the size
limit, rag.api.access), so the behaviour is the same in the chat's server and in ``python -m rag serve``.
Nothing blocks the event loop: the pipeline is async, the embedder runs in a worker thread.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request

from rag import pipeline
from rag.api import chat, models
from rag.api.access import check_key, read_json
from rag.api.errors import APIError, OpenAIRoute, not_found
from rag.api.schemas import ChatRequest, EmbeddingRequest, parse

router = APIRouter(prefix="/v1", route_class=OpenAIRoute, tags=["OpenAI-compatible API"])

MAX_EMBED_INPUTS = 2048


@router.get("/models")
async def list_models(request: Request):
    check_key(request)
    return {"object": "list", "data": await models.listing()}


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request):
    check_key(request)
    if model in models.embed_ids():
        return models.entry(model)
    for entry in await models.listing():
        if entry["id"] == model:
            return entry
    raise not_found(model)


@contextlib.asynccontextmanager
async def _cancel_when_gone(request: Request, run: chat.ChatRun):
    """Cancels a non-streamed answer whose client hung up (nobody would read it)."""
    async def watch():
        while True:
            await asyncio.sleep(0.5)
            if await request.is_disconnected():
                await run.control.cancel()
                return

    task = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        task.cancel()


@router.post("/chat/completions")
async def chat_completions(request: Request):
    user = check_key(request)  # LRC_AUTH=password: the key's user (never the body's "user" field)
    req = parse(ChatRequest, await read_json(request))
    target = models.parse(req.model)
    if target is None:
        raise not_found(req.model)
    question, history = await asyncio.to_thread(chat.conversation, req)  # reads the client's text: off the loop
    opts = chat.options(req, target, user, request.client.host if request.client else None)
    stop = chat.stops(req)
    await models.resolve(req.model, target)
    await chat.check_fits(question, opts)
    include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
    run = chat.ChatRun(question, history, opts, stop, bool(req.stream), req.model, include_usage)
    if not req.stream:
        async with _cancel_when_gone(request, run):
            return JSONResponse(await run.complete())
    stream = await run.start()
    return StreamingResponse(stream, media_type=chat.STREAM_MEDIA_TYPE,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **run.headers()})


def _inputs(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > MAX_EMBED_INPUTS:
            raise APIError(400, f"Invalid value for 'input': at most {MAX_EMBED_INPUTS} texts per request.",
                           code="invalid_value", param="input")
        return value
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
        raise APIError(400, "Invalid value for 'input': token-id arrays are not supported; send text "
                            "(a string or a list of strings).", code="invalid_value", param="input")
    raise APIError(400, "Invalid value for 'input': a string or a non-empty list of strings.",
                   code="invalid_value", param="input")


@router.post("/embeddings")
async def embeddings(request: Request):
    check_key(request)
    req = parse(EmbeddingRequest, await read_json(request))
    if req.model not in models.embed_ids():
        raise not_found(req.model, "embeddings come from model 'rag:embed' (also 'rag' or the embedder's name)")
    texts = _inputs(req.input)
    lib = await asyncio.to_thread(pipeline.library)
    embedder = lib.embedder
    if req.dimensions is not None and req.dimensions != embedder.dim:
        raise APIError(400, f"Invalid value for 'dimensions': this model's vectors have {embedder.dim} "
                            "dimensions and cannot be shortened.", code="invalid_value", param="dimensions")
    vectors = await asyncio.to_thread(embedder.encode, texts)
    tokens = sum(await asyncio.to_thread(embedder.count_tokens, texts)) + 2 * len(texts)  # + [CLS], [SEP]
    data = []
    for i, vec in enumerate(vectors):
        vec = np.asarray(vec, dtype="<f4")
        value = base64.b64encode(vec.tobytes()).decode() if req.encoding_format == "base64" else vec.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown_route(path: str, request: Request):
    check_key(request)
    raise APIError(404, f"Unknown API route '{request.method} /v1/{path}'. This server offers GET /v1/models, "
                        "POST /v1/chat/completions and POST /v1/embeddings.", code="unknown_route")
