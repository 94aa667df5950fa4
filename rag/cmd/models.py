"""`python -m rag models [list | pull NAME [--precision int8|int4] [--force] | path NAME]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "list the local models, or provision one (pull smollm2 | tiny | phi-4-mini | embedder)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=["list", "pull", "path"],
                   help="list (default), pull NAME, or path NAME (print the model's folder)")
    p.add_argument("name", nargs="?", help="smollm2, tiny, phi-4-mini, a model id or a folder; embedder: export "
                   "the embedding model (LRC_EMBED_MODEL) to ONNX into the cache folder")
    p.add_argument("--precision", choices=["int8", "int4"], default=None,
                   help="for pull smollm2: int8 (default, answers better) or int4 (smaller)")
    p.add_argument("--force", action="store_true", help="rebuild even if already provisioned")


def _catalog():
    """The in-process engine's model folders, as the settings configure them."""
    from engines.onnx.models import ModelCatalog
    from rag.config import settings

    return ModelCatalog(**settings().catalog_config())


def _list() -> int:
    catalog = _catalog()
    found = catalog.list_local_models()
    default = catalog.default_model()
    print(f"Models folder: {catalog.models_dir}")
    for extra in catalog.extra_dirs:
        if not extra.is_dir():
            print(f"warning: LRC_MODELS names {extra}, which is not a folder", file=sys.stderr)
        elif not any(m.path and Path(m.path).is_relative_to(extra) for m in found):
            print(f"warning: LRC_MODELS names {extra}, which holds no genai_config.json (directly or one level down)",
                  file=sys.stderr)
    if not found:
        print("No models yet. Run `python -m rag models pull smollm2` (or `make models`).")
        return 0
    width = max(len(m.id) for m in found)
    for m in found:
        mark = "*" if m.id == default else " "
        ctx = f"ctx {m.context_length}" if m.context_length else "ctx ?"
        print(f"{mark} {m.id:<{width}}  {ctx:<10}  {m.name}  [{m.path}]")
    print("(* = default; set LRC_MODEL to choose, LRC_MODELS to add your own ONNX Runtime GenAI folders)")
    return 0


def _embedder(force: bool) -> int:
    """Export the embedding model to ONNX (skipped when present, redone with ``force``; rag.onnx_encoder) and say
    what computes it."""
    from rag import onnx_encoder
    from rag.config import settings
    from rag.embedder import ONNXRUNTIME, Embedder, EmbedderError, resolve_model_path

    s = settings()
    try:
        if force and s.embed_runtime == ONNXRUNTIME:
            try:
                onnx_encoder.load(resolve_model_path(s.embed_model), s.cache_dir, force=True)
            except onnx_encoder.Unsupported:
                pass
        emb = Embedder.get(s.embed_model)
    except EmbedderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Embedding model {emb.name}: {emb.describe()}")
    return 0


def run(args: argparse.Namespace) -> int:
    from engines.base import EngineError
    from engines.onnx import models

    if args.action == "list":
        return _list()
    if not args.name:
        print(f"`models {args.action}` needs a NAME (one of: {', '.join(models.RECIPES)})", file=sys.stderr)
        return 2
    if args.action == "pull" and args.name == "embedder":
        return _embedder(args.force)
    try:
        if args.action == "path":
            print(_catalog().resolve(args.name))
            return 0
        name = args.name
        if args.precision:
            if models.ALIASES.get(name, name) not in ("smollm2", "smollm2-int4"):
                print("--precision applies to smollm2 only", file=sys.stderr)
                return 2
            name = "smollm2" if args.precision == "int8" else "smollm2-int4"
        _catalog().pull(name, force=args.force)
        return 0
    except EngineError as exc:
        print(f"error: {exc.user_text()}", file=sys.stderr)
        return 1
