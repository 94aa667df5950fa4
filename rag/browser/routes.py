"""The /browser routes: the page, its runtime and model files, and two small JSON routes.

    GET  /browser                   the page (browser/page/index.html)
    GET  /browser/page/NAME         its scripts and style
    GET  /browser/ort/NAME          ONNX Runtime Web (browser/node_modules, `make browser-setup`)
    GET  /browser/model/NAME        the SmolLM2 build (fp32 smollm2-web, else the chat's int8): model.onnx, .data, ...
    GET  /browser/api/status        what is there and what is missing (each with a hint)
    POST /browser/api/context       {question} -> passages, the prompt's messages and token ids (rag.browser.context)

Who may ask (the context route reads the library): the same rule as the /v1 API (rag.api.access): with
LRC_AUTH=password a user's own API key, whose uploads are then the only ones searched; otherwise
LRC_API_KEY when set, and only from this machine (as the chat itself, which then listens on 127.0.0.1).
"""
from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rag.api.access import check_key, keys_required, read_json
from rag.api.errors import APIError
from rag.browser import assets, context
from rag.config import settings

router = APIRouter(prefix="/browser", include_in_schema=False)
log = logging.getLogger("local-rag-chat.browser")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _asker(request: Request) -> str | None:
    """The user asking (LRC_AUTH=password), after the API's key check; raises APIError."""
    if settings().auth == "none" and not _loopback(request.client.host if request.client else None):
        raise APIError(403, "Without a login (LRC_AUTH=none) the page's questions are answered on this machine only.",
                       code="local_only")
    return check_key(request)


def _json(body: dict, status: int = 200) -> Response:
    return assets.isolated(JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"}))


def _error(status: int, message: str, hint: str = "") -> Response:
    return _json({"error": {"message": message, "hint": hint}}, status)


# the file and status routes are plain functions: FastAPI runs them in its thread pool, so their file
# checks (stat, the model folder's lookup, genai_config.json) never block the event loop
@router.get("")
@router.get("/")
def page(request: Request) -> Response:
    return assets.serve(request, assets.PAGE_DIR / "index.html", "no-cache")


@router.get("/page/{name}")
def page_file(name: str, request: Request) -> Response:
    return assets.page_file(request, name)


@router.get("/ort/{name}")
def runtime_file(name: str, request: Request) -> Response:
    return assets.runtime_file(request, name)


@router.get("/katex/{name:path}")
def katex_file(name: str, request: Request) -> Response:
    return assets.katex_file(request, name)


@router.get("/model/{name}")
def model_file(name: str, request: Request) -> Response:
    return assets.model_file(request, name)


@router.get("/api/status")
def status() -> Response:
    runtime = assets.runtime_problem()
    folder, model = assets.locate_model()
    body: dict = {"runtime": {"ready": runtime is None, "package": assets.RUNTIME_PACKAGE,
                              "version": assets.runtime_version(), "files": list(assets.RUNTIME_FILES)},
                  "model": {"ready": model is None, "name": "SmolLM2-135M-Instruct"},
                  "key_required": keys_required(), "auth": settings().auth}
    if runtime:
        body["runtime"]["problem"] = runtime.as_dict()
    if model:
        body["model"]["problem"] = model.as_dict()
    else:
        body["model"] |= {"name": assets.model_label(folder), "folder": folder.name,
                          "files": assets.model_files(folder), "config": assets.model_config(folder)}
        if folder.name != assets.model_folder_preferred():
            body["model"]["note"] = ("This is the chat's int8 build: it decodes slowly in WebAssembly. "
                                     f"{assets.BUILD_HINT}")
    return _json(body)


async def _question(request: Request) -> tuple[context.PageQuestion, dict]:
    """The asker's question (and the request's JSON) or an APIError saying what is wrong."""
    user = _asker(request)
    data = await read_json(request)
    question = data.get("question")
    if not isinstance(question, str):
        raise APIError(400, "Send {\"question\": \"...\"}.")
    max_new = data.get("max_new_tokens")
    try:
        max_new = int(max_new) if max_new is not None else None
    except (TypeError, ValueError):
        raise APIError(400, "'max_new_tokens' must be a whole number.") from None
    return context.PageQuestion(question, user, max_new), data


async def _answered(request: Request, what: str, work) -> Response:
    """``work(req, data)``'s JSON, or its error as a readable sentence (never a traceback)."""
    try:
        req, data = await _question(request)
        return _json(await work(req, data))
    except APIError as err:
        return _error(err.status, err.message)
    except context.ContextError as err:
        return _error(err.status, err.message, err.hint)
    except Exception as exc:  # noqa: BLE001
        log.exception("browser %s failed", what)
        return _error(500, f"{what[:1].upper()}{what[1:]} failed: {exc}", "See the server log.")


@router.post("/api/context")
async def question_context(request: Request) -> Response:
    return await _answered(request, "preparing the question", lambda req, _: context.build(req))


@router.post("/api/check")
async def check_answer(request: Request) -> Response:
    """{question, answer, max_new_tokens, cut} -> the chat's sentence check of the page's answer."""
    return await _answered(request, "checking the answer",
                           lambda req, data: context.check(req, data.get("answer"), bool(data.get("cut"))))
