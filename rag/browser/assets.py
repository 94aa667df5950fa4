"""What the in-browser page needs from this machine, and how it is served.

    page     browser/page/ (index.html, page.js, guard.js, worker.js, tokens.js, page.css): written for this project
    runtime  browser/node_modules/onnxruntime-web/dist/: installed by `make browser-setup` (npm ci with the
             committed package-lock.json); only the .mjs / .wasm files the page loads are served
    model    the SmolLM2 int8 folder `python -m rag models pull smollm2` builds (model.onnx, model.onnx.data,
             tokenizer.json, genai_config.json): the same files the in-process engine loads

Every answer carries the cross-origin isolation headers (COOP/COEP): with them the page may use
SharedArrayBuffer, so ONNX Runtime's WebAssembly backend runs on several threads. Files carry an ETag
(size + modification time) and may be cached; the page keeps the model in the Cache API as well.
"""
from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from rag import bundled
from rag.config import REPO_ROOT, settings

BROWSER_DIR = bundled.path("browser")  # the checkout's browser/, or the installed package's copy of the page
PAGE_DIR = BROWSER_DIR / "page"
RUNTIME_PACKAGE = "onnxruntime-web"
RUNTIME_DIR = BROWSER_DIR / "node_modules" / RUNTIME_PACKAGE / "dist"
KATEX_DIR = BROWSER_DIR / "node_modules" / "katex" / "dist"
KATEX_NAME = re.compile(r"katex\.min\.css|fonts/KaTeX_[A-Za-z0-9_-]+\.(?:woff2|woff|ttf)")
# the bundles the page loads: WebAssembly only, or WebGPU (with WebAssembly for what WebGPU lacks)
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
                 "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
PAGE_FILES = ("index.html", "page.js", "guard.js", "worker.js", "tokens.js", "page.css")
# the recipes whose builds the page runs (engines.onnx.models.RECIPES), preferred first: the fp32 build made
# for the browser, else the chat's int8 build (loads as it is, but decodes ~15x slower in WebAssembly)
MODEL_KEYS = ("smollm2-web", "smollm2")
MODEL_FILES = ("model.onnx", "model.onnx.data", "tokenizer.json", "genai_config.json")
SETUP_HINT = "Run `make browser-setup` (npm ci in browser/; needs Node.js and npm) and reload this page."
BUILD_HINT = f"Run `python -m rag models pull {MODEL_KEYS[0]}` (or `make browser-setup`) and reload this page."

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
BINARY = (".wasm", ".onnx", ".data")  # weights and code that gzip barely shrinks
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


@dataclass
class Problem:
    """Why a part is missing, and what to do about it."""

    message: str
    hint: str

    def as_dict(self) -> dict:
        """What the status route shows anyone who can reach the page: no folder of this server in it."""
        return {"message": public_text(self.message), "hint": public_text(self.hint)}


def public_text(text: str) -> str:
    """``text`` with this server's folders named, not spelled out (the app's, the cache, the data, home)."""
    s = settings()
    for folder, name in ((s.cache_dir, "the model cache folder"), (s.data_dir, "the data folder"),
                         (REPO_ROOT, "the app folder"), (Path.home(), "the home folder")):
        text = text.replace(str(folder), f"<{name}>")
    return text


def runtime_version() -> str | None:
    try:
        return json.loads((RUNTIME_DIR.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def runtime_problem() -> Problem | None:
    missing = [name for name in RUNTIME_FILES if not (RUNTIME_DIR / name).is_file()]
    if missing:
        return Problem(f"ONNX Runtime Web is not installed on the server ({RUNTIME_DIR} lacks {missing[0]}).",
                       SETUP_HINT)
    return None


def model_dir() -> Path:
    """The browser model's folder (raises engines.base.ModelNotFound when none is built)."""
    from engines.base import ModelNotFound
    from engines.onnx.models import ModelCatalog

    catalog = ModelCatalog(**settings().catalog_config())
    for key in MODEL_KEYS:
        try:
            return catalog.resolve(key)
        except ModelNotFound as exc:
            missing = exc
    raise missing


def model_label(folder: Path) -> str:
    from engines.onnx.models import ALIASES, RECIPES

    key = ALIASES.get(folder.name)
    return RECIPES[key].label if key in RECIPES else folder.name


def model_folder_preferred() -> str:
    from engines.onnx.models import RECIPES

    return RECIPES[MODEL_KEYS[0]].folder


def locate_model() -> tuple[Path | None, Problem | None]:
    """The browser model's folder (None when none is built) and, when the page cannot load it, why."""
    from engines.base import ModelNotFound

    try:
        folder = model_dir()
    except ModelNotFound as exc:
        return None, Problem(f"The browser model (SmolLM2-135M-Instruct) is not built: {exc.message}", BUILD_HINT)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        return folder, Problem(f"The model folder {folder} lacks {', '.join(missing)}: the page cannot load it.",
                               BUILD_HINT)
    return folder, None


def model_problem() -> Problem | None:
    return locate_model()[1]


def etag(path: Path) -> str:
    st = path.stat()
    return f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'


def model_files(folder: Path | None = None) -> list[dict]:
    """The model's files with their sizes and versions (the page's cache keys)."""
    folder = folder or model_dir()
    return [{"name": name, "size": (folder / name).stat().st_size, "etag": etag(folder / name)} for name in MODEL_FILES]


def model_config(folder: Path | None = None) -> dict:
    """What the page's generation loop needs from genai_config.json."""
    cfg = json.loads(((folder or model_dir()) / "genai_config.json").read_text())["model"]
    dec = cfg["decoder"]
    eos = cfg.get("eos_token_id", [])
    return {"layers": dec["num_hidden_layers"], "kv_heads": dec["num_key_value_heads"], "head_size": dec["head_size"],
            "eos": eos if isinstance(eos, list) else [eos], "context_length": cfg.get("context_length")}


def isolated(response: Response) -> Response:
    response.headers.update(ISOLATION)
    return response


def error(status: int, problem: Problem) -> Response:
    return isolated(JSONResponse({"error": problem.as_dict()}, status_code=status))


def serve(request: Request, path: Path, cache: str) -> Response:
    """A file with an ETag; 304 when the browser already holds this version."""
    tag = etag(path)
    headers = {"ETag": tag, "Cache-Control": cache}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return isolated(Response(status_code=304, headers=headers))
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in BINARY:  # sent as is: the server's gzip takes ~50 s for the 270 MB of weights
        headers["Content-Encoding"] = "identity"
    return isolated(FileResponse(path, media_type=media, headers=headers))


def _listed(request: Request, name: str, files: tuple[str, ...], unknown: str,
            locate: Callable[[], tuple[Path | None, Problem | None]]) -> Response:
    """``name`` if it is one of ``files`` (else 404 ``unknown``), from the folder ``locate`` finds (else 503)."""
    if name not in files:
        return error(404, Problem(unknown, "Open /browser."))
    folder, problem = locate()
    if problem:
        return error(503, problem)
    return serve(request, folder / name, "no-cache")  # revalidated: a rebuild or `make browser-setup` may change it


def page_file(request: Request, name: str) -> Response:
    return _listed(request, name, PAGE_FILES, f"No page file '{name}'.", lambda: (PAGE_DIR, None))


def runtime_file(request: Request, name: str) -> Response:
    return _listed(request, name, RUNTIME_FILES, f"'{name}' is not a file of the page's runtime.",
                   lambda: (RUNTIME_DIR, runtime_problem()))


def katex_file(request: Request, name: str) -> Response:
    """The KaTeX stylesheet and its fonts that Chainlit's page links (from a public CDN: app.py points the link
    here), from browser/node_modules/katex (`make browser-setup`)."""
    if not KATEX_NAME.fullmatch(name):
        return error(404, Problem(f"'{name}' is not a KaTeX stylesheet or font.", "Open the chat."))
    if not (KATEX_DIR / name).is_file():
        return error(503, Problem("KaTeX is not installed on the server.", SETUP_HINT))
    return serve(request, KATEX_DIR / name, "public, max-age=86400")


def katex_installed() -> bool:
    return (KATEX_DIR / "katex.min.css").is_file()


def model_file(request: Request, name: str) -> Response:
    return _listed(request, name, MODEL_FILES, f"'{name}' is not a file of the browser model.", locate_model)
