"""In-browser inference: a page (/browser) where the small model runs in the user's browser.

ONNX Runtime Web (WebGPU when the browser has it, else WebAssembly) runs the project's SmolLM2 int8
build in a Web Worker with a greedy KV-cache loop (browser/page/worker.js); the server answers only
what the page cannot do itself: retrieval and the pipeline's prompt, as token ids (rag.browser.context).
The runtime, the model and the page are all served by the app: nothing comes from a CDN or a hub.

    assets.py   where the page, runtime and model files are; serving them (ETag, isolation headers)
    context.py  question -> passages + the pipeline's prompt (messages, token ids)
    routes.py   the /browser routes; mount(app) puts them in front of Chainlit's catch-all page
"""
from __future__ import annotations

from fastapi import FastAPI

from rag.browser.routes import router

__all__ = ["mount", "router"]


def mount(app: FastAPI) -> None:
    """Add the /browser routes to ``app`` ahead of its existing routes."""
    from rag.api import prepend

    prepend(app, router)
