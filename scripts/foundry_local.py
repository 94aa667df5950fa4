#!/usr/bin/env python3
"""Run a real Foundry Local service on this machine with a provisioned model (bring-your-own-model).

    python scripts/foundry_local.py --model smollm2            # what `make foundry` runs
    python scripts/foundry_local.py --model /path/to/onnx-genai-folder --port 5273

Foundry Local's native runtime and its built-in OpenAI-compatible web service come from the PyPI
package ``foundry-local-sdk`` (pinned in scripts/foundry-requirements.txt), which pins its own
onnxruntime, so it lives in ``.venv-foundry``. Started from any other interpreter, this script
resolves the model folder (``engines.onnx.models``) and the app's cache folder (``rag.config``), and
re-executes itself under ``.venv-foundry/bin/python`` with both on its command line (the Foundry
venv does not have the app's dependencies, so it never imports them).
The model is registered in Foundry Local's local catalog (bring-your-own-model; the folder is not
copied) under a stable id such as ``smollm2-135m-instruct-generic-cpu:1``; a registration left by an
earlier run is reused.

When the service is up it prints one line

    READY base_url=http://127.0.0.1:PORT/catalogs/local/v1 model=MODEL_ID

and writes the same facts as JSON to the state file (default ``<cache>/foundry.json``), which the
Foundry engine reads when FOUNDRY_BASE_URL is not set. SIGTERM / SIGINT stop the service, unload
the model and remove the state file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FOUNDRY_PYTHON = REPO_ROOT / ".venv-foundry" / "bin" / "python"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

APP_NAME = "local-rag-chat"
# model ids must look like <name>:<version>; Foundry Local's convention is <name>-<device>:<version>
KNOWN_IDS = {
    "smollm2": "smollm2-135m-instruct-generic-cpu:1",
    "tiny": "tiny-random-smollm2-generic-cpu:1",
}


def log(message: str) -> None:
    print(f"[foundry_local] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# model folder and id
# --------------------------------------------------------------------------------------------

def _is_model_dir(path: Path) -> bool:
    return (path / "genai_config.json").is_file()


def app_cache_dir() -> Path:
    """The app's cache folder, from its settings (which need the app's virtual environment)."""
    try:
        from rag.config import settings
    except ImportError as exc:
        raise SystemExit(f"error: the app's settings cannot be read here ({exc}). Run this script with the "
                         "app's Python (`.venv/bin/python`); it re-executes itself under .venv-foundry.") from None
    return settings().cache_dir


def resolve_model_dir(name_or_path: str) -> Path:
    """A provisioned model name (``smollm2``, ``tiny``) or a folder holding genai_config.json."""
    as_path = Path(name_or_path).expanduser()
    if _is_model_dir(as_path):
        return as_path.resolve()
    from engines.base import EngineError
    from engines.onnx.models import ModelCatalog
    from rag.config import settings

    try:
        return Path(ModelCatalog(**settings().engine_config("onnx")).resolve(name_or_path)).resolve()
    except EngineError as exc:
        raise SystemExit(f"error: {exc.user_text()}") from None


def default_model_id(name_or_path: str, model_dir: Path) -> str:
    """``<name>-generic-cpu:1``; provisioned models keep a stable id whatever their folder is called."""
    key = name_or_path
    try:
        key = json.loads((model_dir / "lrc_model.json").read_text()).get("name") or key
    except (OSError, ValueError):
        pass
    if key in KNOWN_IDS:
        return KNOWN_IDS[key]
    slug = re.sub(r"[^a-z0-9]+", "-", model_dir.name.lower()).strip("-") or "model"
    return f"{slug}-generic-cpu:1"


# --------------------------------------------------------------------------------------------
# re-exec under the Foundry venv
# --------------------------------------------------------------------------------------------

def _sdk_importable() -> bool:
    try:
        import foundry_local_sdk  # noqa: F401
    except ImportError:
        return False
    return True


def reexec_in_foundry_venv(args: argparse.Namespace, model_dir: Path) -> None:
    if not FOUNDRY_PYTHON.exists():
        raise SystemExit(f"error: foundry-local-sdk is not installed here and {FOUNDRY_PYTHON} is missing. "
                         "Run `make foundry-setup` first.")
    if Path(sys.executable).absolute() == FOUNDRY_PYTHON.absolute():
        raise SystemExit(f"error: {FOUNDRY_PYTHON} cannot import foundry_local_sdk. "
                         "Run `make foundry-setup` (reinstalls scripts/foundry-requirements.txt).")
    argv = [str(FOUNDRY_PYTHON), str(Path(__file__).resolve()), "--model", str(model_dir),
            "--model-id", args.model_id, "--host", args.host, "--port", str(args.port),
            "--data-dir", str(args.data_dir), "--state-file", str(args.state_file),
            "--app-cache-dir", str(args.app_cache_dir), "--log-level", args.log_level]
    argv += ["--stop-with-parent"] if args.stop_with_parent else []
    os.execv(argv[0], argv)


# --------------------------------------------------------------------------------------------
# the service
# --------------------------------------------------------------------------------------------

def write_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def remove_state(path: Path) -> None:
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if current.get("pid") == os.getpid():  # never remove another launcher's state
        path.unlink(missing_ok=True)


def register(catalog, model_dir: Path, model_id: str):
    """Register the folder under model_id, reusing an earlier registration of the same folder."""
    from foundry_local_sdk import FoundryLocalException, ModelInfoBuilder

    existing = catalog.get_model_variant(model_id)
    if existing is not None:
        try:
            same = Path(existing.get_path()).resolve() == model_dir
        except Exception:  # noqa: BLE001 - unknown path: register again
            same = False
        if same:
            log(f"reusing registration {model_id} -> {model_dir}")
            return existing
        log(f"{model_id} was registered for another folder; registering it again for {model_dir}")
        catalog.unregister_model(model_id)
    with ModelInfoBuilder() as meta:
        meta.set_string_property("task", "chat-completion")
        meta.set_string_property("display_name", model_id.split(":")[0])
        try:
            return catalog.register_model(model_path=str(model_dir), model_id=model_id, metadata=meta)
        except FoundryLocalException:
            again = catalog.get_model_variant(model_id)  # registered concurrently / stale cache
            if again is None:
                raise
            return again


def serve(args: argparse.Namespace, model_dir: Path) -> int:
    from foundry_local_sdk import CatalogType, Configuration, FoundryLocalException, FoundryLocalManager, LogLevel

    data_dir = Path(args.data_dir).expanduser().resolve()
    for sub in ("app", "models", "logs"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0 = time.perf_counter()
    config = Configuration(
        app_name=APP_NAME,
        app_data_dir=str(data_dir / "app"),
        model_cache_dir=str(data_dir / "models"),
        logs_dir=str(data_dir / "logs"),
        log_level=LogLevel(args.log_level),
        web=Configuration.WebService(urls=f"http://{args.host}:{args.port}"),
        disable_nonessential_telemetry=True,
    )
    FoundryLocalManager.initialize(config)
    manager = FoundryLocalManager.instance
    state_file = Path(args.state_file).expanduser()
    model = None
    try:
        catalog = manager.get_catalog(CatalogType.LOCAL)
        model = register(catalog, model_dir, args.model_id)
        if stop.is_set():
            return 0
        model.load()  # the service never loads a model by itself
        if stop.is_set():
            return 0
        try:
            manager.start_web_service()
        except FoundryLocalException as exc:
            hint = (f" Port {args.port} is taken: choose another with --port, or --port 0 for a free one."
                    if "in use" in str(exc).lower() else "")
            log(f"error: the web service did not start on {args.host}:{args.port}: {exc}.{hint}")
            return 1
        urls = manager.urls or []
        if not urls:
            log("the web service reported no URL")
            return 1
        root = urls[0].rstrip("/")
        base_url = f"{root}/catalogs/local/v1"
        state = {"base_url": base_url, "model": model.id, "alias": model.alias,
                 "context_length": model.context_length, "model_path": str(model_dir),
                 "pid": os.getpid(), "started_at": time.time(), "data_dir": str(data_dir)}
        write_state(state_file, state)
        log(f"ready in {time.perf_counter() - t0:.1f}s; state in {state_file}")
        found = ("LRC_ENGINE=foundry (it reads the state file), or "
                 if state_file.resolve() == (Path(args.app_cache_dir) / "foundry.json").resolve() else "")
        log(f"use it from the app with {found}FOUNDRY_BASE_URL={base_url} FOUNDRY_MODEL={model.id}; "
            "stop with Ctrl+C")
        print(f"READY base_url={base_url} model={model.id} alias={model.alias}", flush=True)
        parent = os.getppid()
        while not stop.wait(0.5):
            if args.stop_with_parent and os.getppid() != parent:
                log("the process that started this service is gone, stopping")
                break
        return 0
    finally:
        remove_state(state_file)
        for step in (lambda: manager.stop_web_service() if manager.urls else None,
                     lambda: model.unload() if model is not None else None,
                     manager.close):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep shutting down
                log(f"while stopping: {type(exc).__name__}: {exc}")
        log("stopped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2",
                   help="provisioned model name (smollm2, tiny) or a folder with genai_config.json")
    p.add_argument("--model-id", default="",
                   help="id to register the model under (<name>:<version>); default derived from the model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 = a free port (default)")
    p.add_argument("--data-dir", default=None,
                   help="Foundry Local's app data, registrations and logs (default: <cache>/foundry)")
    p.add_argument("--state-file", default=None,
                   help="where to write base_url/model JSON when ready (default: <cache>/foundry.json)")
    p.add_argument("--app-cache-dir", default=None, help=argparse.SUPPRESS)  # <cache>, passed on re-exec
    p.add_argument("--stop-with-parent", action="store_true",
                   help="stop when the process that started this one exits (tests, benchmarks)")
    p.add_argument("--log-level", default="Warning",
                   choices=["Verbose", "Debug", "Information", "Warning", "Error", "Fatal"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.app_cache_dir = args.app_cache_dir or str(app_cache_dir())
    args.data_dir = args.data_dir or str(Path(args.app_cache_dir) / "foundry")
    args.state_file = args.state_file or str(Path(args.app_cache_dir) / "foundry.json")
    model_dir = resolve_model_dir(args.model)
    args.model_id = args.model_id or default_model_id(args.model, model_dir)
    if not re.fullmatch(r"[^:\s]+:\d+", args.model_id):
        raise SystemExit(f"error: --model-id must look like name:version, got '{args.model_id}'")
    if not _sdk_importable():
        reexec_in_foundry_venv(args, model_dir)
    return serve(args, model_dir)


if __name__ == "__main__":
    sys.exit(main())
