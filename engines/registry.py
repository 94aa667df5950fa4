"""Picks an engine by name. Adding an engine is one new module and one line in ENGINES: the one place
engine names are written (the settings panel, the CLI's help, ``rag compare``'s choices and /v1's model
list read them from here; "auto", routing between these, is ``rag.pipeline.AUTO``).

Engines take their settings as constructor arguments (``engines/`` reads no configuration): the
caller passes them, e.g. ``registry.get(name, settings().engine_config(name))``.

Engines are process-wide: one instance per name and configuration, shared by all chats (the in-process
engine holds one loaded model per instance). A changed setting gives the instance made for that setting;
the one made for the old setting stays until ``close_all`` (a chat may still be using it).
"""
from __future__ import annotations

import importlib
import json

from engines.base import Engine, EngineUnavailable

# name -> (module, class, label shown in the settings panel)
ENGINES: dict[str, tuple[str, str, str]] = {
    "onnx": ("engines.onnx.engine", "OnnxGenaiEngine", "In-process (ONNX Runtime GenAI)"),
    "foundry": ("engines.foundry.engine", "FoundryEngine", "Foundry Local"),
}

IN_PROCESS = "onnx"  # the engine that runs in this process (no service to start): the default, the /browser page's

_instances: dict[tuple[str, str], Engine] = {}  # (name, config_key(config)) -> its instance


def labels() -> dict[str, str]:
    return {name: spec[2] for name, spec in ENGINES.items()}


def create(name: str, **kwargs) -> Engine:
    """A new engine instance built with ``kwargs`` (tests use this to point an engine at their own
    service or model)."""
    if name not in ENGINES:
        raise EngineUnavailable(f"Unknown engine '{name}'.", f"Choose one of: {', '.join(ENGINES)}.")
    module_name, class_name, _ = ENGINES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**kwargs)


def config_key(config: dict | None) -> str:
    """A stable, hashable form of an engine's configuration: equal settings give equal keys (paths and
    other values are compared as text; the order of the keys does not matter)."""
    return json.dumps(config or {}, sort_keys=True, default=str)


def get(name: str, config: dict | None = None) -> Engine:
    """The shared instance of engine ``name`` made with ``config`` as its keyword arguments: created on
    the first call with that configuration; another configuration gives another instance."""
    key = (name, config_key(config))
    if key not in _instances:
        _instances[key] = create(name, **(config or {}))
    return _instances[key]


async def close(name: str, config: dict | None = None) -> None:
    """Close and forget the shared instance of ``name`` made with ``config`` (none: nothing to do)."""
    engine = _instances.pop((name, config_key(config)), None)
    if engine is not None:
        await engine.aclose()


async def close_all() -> None:
    for engine in list(_instances.values()):
        await engine.aclose()
    _instances.clear()
