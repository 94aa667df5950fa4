"""Model folders for the in-process engine: what is provisioned, name -> folder, and `pull`.

A model is any ONNX Runtime GenAI folder (it has a ``genai_config.json``). A :class:`ModelCatalog`
sees them in two places, both given to it by the caller (the app passes its settings):

* provisioned ones under ``models_dir`` (built offline by ``python -m rag models pull``);
* ``extra_dirs`` (the app's ``LRC_MODELS``): a model folder itself, or a folder whose sub-folders
  are models ("bring your own model", e.g. Phi-4-mini-instruct ONNX CPU int4).

A model's id is its folder name; short aliases (``smollm2``, ``tiny``, ``phi-4-mini``) and plain
paths are accepted wherever a model name is.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from engines.base import EngineUnavailable, ModelInfo, ModelNotFound

ENGINE_NAME = "onnx"
CONFIG_FILE = "genai_config.json"
INFO_FILE = "lrc_model.json"  # written next to a provisioned model: how it was made
# the offline builder (torch/transformers run in its own process, never in the app): the checkout's scripts/,
# or in an installed package the copy it carries (rag/_bundled/, rag.bundled.FILES; a path, not an import)
_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = next((p for p in (_ROOT / "scripts" / "build_model.py", _ROOT / "rag" / "_bundled" / "scripts" /
                                 "build_model.py") if p.is_file()), _ROOT / "scripts" / "build_model.py")


@dataclass(frozen=True)
class Recipe:
    """A model `python -m rag models pull` knows how to provision."""

    folder: str
    label: str
    kind: str  # "smollm2" | "tiny" | "phi-4-mini"
    precision: str = ""


RECIPES: dict[str, Recipe] = {
    "smollm2": Recipe("smollm2-135m-instruct-int8", "SmolLM2-135M-Instruct (int8)", "smollm2", "int8"),
    "smollm2-int4": Recipe("smollm2-135m-instruct-int4", "SmolLM2-135M-Instruct (int4)", "smollm2", "int4"),
    # the in-browser page's build (rag.browser): ONNX Runtime Web's WebAssembly backend runs fp32 MatMuls
    # ~15x faster than int8 MatMulNBits (docs/BENCHMARKS.md "In-browser inference")
    "smollm2-web": Recipe("smollm2-135m-instruct-fp32", "SmolLM2-135M-Instruct (fp32, in-browser build)", "smollm2",
                          "fp32"),
    "tiny": Recipe("tiny-random-smollm2", "Tiny random-weight test model", "tiny", "fp32"),
    "phi-4-mini": Recipe("phi-4-mini-instruct-cpu-int4", "Phi-4-mini-instruct (CPU int4)", "phi-4-mini", "int4"),
}
ALIASES = {"smollm2-int8": "smollm2", **{r.folder: key for key, r in RECIPES.items()}}
DEFAULT_ORDER = ["phi-4-mini", "smollm2", "smollm2-int4"]  # the default model, best available first

PHI_REPO = "microsoft/Phi-4-mini-instruct-onnx"
PHI_SUBFOLDER = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"


def _hf_host() -> str:
    """The Hugging Face hub address (HF_ENDPOINT, which huggingface_hub honours too)."""
    return os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"


def is_model_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def read_context_length(path: Path) -> int | None:
    try:
        cfg = json.loads((path / CONFIG_FILE).read_text())
        value = cfg.get("model", {}).get("context_length") or cfg.get("search", {}).get("max_length")
        return int(value) if value else None
    except (OSError, ValueError):
        return None


def _pull_hint(name: str) -> str:
    key = ALIASES.get(name, name)
    if key in RECIPES:
        return f"Run `python -m rag models pull {key}` (or `make models`)."
    return ("Run `python -m rag models` to see what is available, `make models` to build the default model, "
            "or name a folder containing genai_config.json in LRC_MODELS.")


class ModelCatalog:
    """The models one configuration sees: provisioned under ``models_dir``, brought along in
    ``extra_dirs``; ``default_model`` (id, alias or path) is the configured choice, if any."""

    def __init__(self, models_dir: str | os.PathLike | None = None,
                 extra_dirs: Iterable[str | os.PathLike] = (), default_model: str | None = None):
        self.models_dir = Path(models_dir).expanduser() if models_dir else None
        self.extra_dirs = [Path(p).expanduser() for p in extra_dirs or ()]
        self.chosen = str(default_model or "").strip() or None

    # ---------------------------------------------------------------- lookup
    def _provisioned(self, key: str) -> Path | None:
        """Where recipe ``key`` is (or would be) provisioned; None without a models folder."""
        return self.models_dir / RECIPES[key].folder if self.models_dir else None

    def _label(self, path: Path) -> str:
        key = ALIASES.get(path.name)
        if key and path.parent == self.models_dir:
            return RECIPES[key].label
        return path.name

    def _info(self, path: Path, model_id: str) -> ModelInfo:
        return ModelInfo(id=model_id, engine=ENGINE_NAME, name=self._label(path),
                         context_length=read_context_length(path), path=str(path))

    def _extra(self) -> Iterator[Path]:
        for base in self.extra_dirs:
            if is_model_dir(base):
                yield base
            elif base.is_dir():
                yield from sorted(p for p in base.iterdir() if p.is_dir() and is_model_dir(p))

    def list_local_models(self) -> list[ModelInfo]:
        """Provisioned models first (known recipes in a fixed order), then the extra folders."""
        found: list[ModelInfo] = []
        seen: set[str] = set()
        root = self.models_dir
        if root is not None and root.is_dir():
            known = [RECIPES[k].folder for k in RECIPES]
            folders = sorted((p for p in root.iterdir() if p.is_dir() and is_model_dir(p)),
                             key=lambda p: (known.index(p.name) if p.name in known else len(known), p.name))
            for p in folders:
                found.append(self._info(p, p.name))
                seen.add(p.name)
        for p in self._extra():
            model_id = p.name if p.name not in seen else str(p)
            found.append(self._info(p, model_id))
            seen.add(model_id)
        return found

    def resolve(self, name_or_path: str | os.PathLike | None = None) -> Path:
        """The folder of a model given its id, alias or path; ModelNotFound (with a hint) if absent."""
        name = str(name_or_path or "").strip() or self.default_model()
        key = ALIASES.get(name, name)
        if key in RECIPES:
            path = self._provisioned(key)
            if path is not None and is_model_dir(path):
                return path
            folder = RECIPES[key].folder
            for p in self._extra():  # a bring-your-own copy under the same folder name
                if p.name == folder:
                    return p
            raise ModelNotFound(f"Model '{name}' is not provisioned (looked in {self.models_dir}).", _pull_hint(key))
        for info in self.list_local_models():
            if info.id == name:
                return Path(info.path)
        path = Path(name).expanduser()
        if is_model_dir(path):
            return path.resolve()
        if path.is_dir():
            raise ModelNotFound(f"'{path}' is not an ONNX Runtime GenAI model folder (no {CONFIG_FILE} inside).",
                                "Point to the folder that contains genai_config.json.")
        raise ModelNotFound(f"Unknown model '{name}'.", _pull_hint(name))

    def default_model(self) -> str:
        """The configured model if any, else the best provisioned one, else 'smollm2' (which names its
        pull command)."""
        if self.chosen:
            return self.chosen
        for key in DEFAULT_ORDER:
            path = self._provisioned(key)
            if path is not None and is_model_dir(path):
                return path.name
        for info in self.list_local_models():
            if info.id != RECIPES["tiny"].folder:
                return info.id
        return RECIPES["smollm2"].folder

    def require(self, name: str) -> Path:
        """For tests and scripts: the model's folder, or ModelNotFound naming `make test-models`."""
        try:
            return self.resolve(name)
        except ModelNotFound as exc:
            raise ModelNotFound(exc.message, "Run `make test-models` to build the test models.") from None

    # ---------------------------------------------------------------- provisioning
    def pull(self, name: str, force: bool = False, log: Callable[[str], None] = print) -> Path:
        """Provision a model into models_dir atomically (built in a temp folder, verified, then
        renamed). Skipped when already present unless ``force``."""
        key = ALIASES.get(name, name)
        if key not in RECIPES:
            raise ModelNotFound(f"No recipe for '{name}'.", f"Known: {', '.join(RECIPES)}.")
        root = self.models_dir
        if root is None:
            raise EngineUnavailable("No models folder is configured to provision into.")
        recipe = RECIPES[key]
        final = root / recipe.folder
        if is_model_dir(final) and not force:
            log(f"{recipe.label}: already provisioned in {final}")
            return final
        with _pull_lock(root, recipe.folder):
            if is_model_dir(final) and not force:  # another process built it while we waited
                log(f"{recipe.label}: already provisioned in {final}")
                return final
            tmp = root / f".tmp-{recipe.folder}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            start = time.perf_counter()
            try:
                if recipe.kind == "phi-4-mini":
                    _download_phi(tmp, log)
                else:
                    _build_local(recipe, tmp, root.parent / "build", log)
                answer = verify(tmp, expect_words=recipe.kind != "tiny")
                built = time.perf_counter() - start
                (tmp / INFO_FILE).write_text(json.dumps({
                    "name": key, "label": recipe.label, "precision": recipe.precision, "kind": recipe.kind,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(built, 1), "verify_answer": answer}, indent=2))
                if final.exists():
                    old = final.with_name(f".old-{recipe.folder}-{os.getpid()}")
                    final.rename(old)
                    shutil.rmtree(old, ignore_errors=True)
                tmp.rename(final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                with contextlib.suppress(OSError):
                    Path(f"{tmp}.log").unlink()
            log(f"{recipe.label}: ready in {final} ({built:.0f} s). Test answer: {answer.strip()[:80]!r}")
            return final


@contextlib.contextmanager
def _pull_lock(root: Path, folder: str) -> Iterator[None]:
    """One build per model folder at a time, across processes (others wait, then find it built)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verify(path: Path, expect_words: bool = True, max_new_tokens: int = 24) -> str:
    """Load the model, answer one question greedily; return the answer (raises if it cannot)."""
    import onnxruntime_genai as og

    model = og.Model(str(path))
    tokenizer = og.Tokenizer(model)
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    prompt = tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new_tokens, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    stream = tokenizer.create_stream()
    pieces, count = [], 0
    while not gen.is_done():
        gen.generate_next_token()
        pieces.append(stream.decode(gen.get_next_tokens()[0]))
        count += 1
    answer = "".join(pieces)
    if count == 0 or (expect_words and not answer.strip()):
        raise RuntimeError(f"model in {path} loaded but produced no answer")
    return answer


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A short HEAD to the hub, bounded as a whole (name resolution included) so offline never hangs."""
    import threading

    import httpx

    result: list[bool] = []

    def probe() -> None:
        try:
            httpx.head(_hf_host(), timeout=timeout, follow_redirects=False)
            result.append(True)
        except httpx.HTTPError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # daemon: a stuck DNS lookup cannot block exit
    thread.start()
    thread.join(timeout + 1)
    return bool(result and result[0])


def _build_local(recipe: Recipe, tmp: Path, work: Path, log: Callable[[str], None]) -> None:
    """Run the offline builder; it inherits this process's environment (the app keeps it offline)."""
    cmd = [sys.executable, str(BUILD_SCRIPT), recipe.kind, "--out", str(tmp), "--work", str(work)]
    if recipe.kind == "smollm2":
        cmd += ["--precision", recipe.precision]
    log(f"building {recipe.label} (a few minutes on 2 cores; log: {tmp}.log)")
    with open(f"{tmp}.log", "w") as logfile:
        done = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = Path(f"{tmp}.log").read_text(errors="replace").splitlines()[-15:]
        raise EngineUnavailable(f"Building {recipe.label} failed (exit {done.returncode}).",
                                "Last lines of the build log:\n" + "\n".join(tail))


def _download_phi(tmp: Path, log: Callable[[str], None]) -> None:
    if not _hub_reachable():
        raise EngineUnavailable(
            f"Cannot download Phi-4-mini: the Hugging Face hub ({_hf_host()}) is not reachable from this machine.",
            f"On a machine that is online, download {PHI_REPO} (folder {PHI_SUBFOLDER}), copy that folder here "
            "and name it in LRC_MODELS.")
    log(f"downloading {PHI_REPO}/{PHI_SUBFOLDER} (~4.9 GB)")
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], allow_patterns=[sys.argv[2] + '/*'], local_dir=sys.argv[3])")
    raw = tmp.with_name(tmp.name + "-raw")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": _hf_host()}  # this one download goes online
    done = subprocess.run([sys.executable, "-c", code, PHI_REPO, PHI_SUBFOLDER, str(raw)], env=env)
    if done.returncode != 0:
        shutil.rmtree(raw, ignore_errors=True)
        raise EngineUnavailable("Downloading Phi-4-mini failed.", "See the messages above; try again when online.")
    (raw / PHI_SUBFOLDER).rename(tmp)
    shutil.rmtree(raw, ignore_errors=True)
