"""Where the Foundry Local service is, and which of its models a name means.

Finding the endpoint, first match wins:
1. the base URL the engine was given (the app's FOUNDRY_BASE_URL: ``http://127.0.0.1:PORT/v1`` for
   the desktop service, ``.../catalogs/local/v1`` for ``make foundry``);
2. the state file ``scripts/foundry_local.py`` writes while it runs (the app's ``<cache>/foundry.json``);
3. ``foundry service status`` when the desktop ``foundry`` command is installed (its port is dynamic).

Model names: the service accepts ids only (``Phi-4-mini-instruct-generic-cpu:5``), people write
aliases (``phi-4-mini``); :func:`resolve_alias` maps one to the other against the listed ids.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engines.base import EngineUnavailable

START_HINT = ("Start it with `make foundry` (or `foundry service start` with the desktop app), "
              "or point FOUNDRY_BASE_URL at a running endpoint.")
_URL_RE = re.compile(r"https?://[^\s/'\"<>]+")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def read_state_file(path: Path) -> dict | None:
    """The launcher's {base_url, model, pid, ...} if the file exists and its launcher still runs."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("base_url"):
        return None
    if "pid" in state and not _pid_alive(state["pid"]):
        return None
    return state


def parse_service_status(text: str) -> str | None:
    """Base URL (``scheme://host:port/v1``) from ``foundry service status`` output, if it names one."""
    for match in _URL_RE.finditer(text):
        parts = urlsplit(match.group(0).rstrip(".,;:)"))
        if parts.hostname and parts.port:
            return f"{parts.scheme}://{parts.netloc}/v1"
    return None


async def _service_status_url() -> str | None:
    """What `foundry service status` says (None if it names no endpoint, fails or hangs)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "foundry", "service", "status", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except (OSError, asyncio.TimeoutError):
        return None
    return parse_service_status(out.decode("utf-8", "replace"))


async def discover(configured_url: str | None, state_file: Path | None,
                   discover_cli: bool = True) -> tuple[str, dict | None]:
    """The base URL to use, and the launcher's state when it describes that endpoint (it knows the
    model and its context length). EngineUnavailable, saying how to start one, when none is found."""
    state = read_state_file(state_file) if state_file else None
    if configured_url:
        if state and str(state["base_url"]).rstrip("/") == configured_url:
            return configured_url, state  # the launcher's service
        return configured_url, None
    if state:
        return str(state["base_url"]).rstrip("/"), state
    if discover_cli and shutil.which("foundry"):
        url = await _service_status_url()
        if url:
            return url, None
        raise EngineUnavailable("The Foundry Local service is not running "
                                "(`foundry service status` names no endpoint).",
                                "Start it with `foundry service start`, or `make foundry`.")
    raise EngineUnavailable("No Foundry Local endpoint is configured or running.", START_HINT)


def _version(model_id: str) -> int:
    tail = model_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def resolve_alias(name: str, ids: list[str]) -> str | None:
    """The listed id that ``name`` means: the id itself, an id without its version, or an alias.

    ``phi-4-mini`` -> ``Phi-4-mini-instruct-generic-cpu:5``: ids that start with the alias followed by
    ``-``, preferring ``<alias>-instruct``, then CPU builds, then the highest version.
    """
    if name in ids:
        return name
    low = name.lower()
    exact = [i for i in ids if i.lower() == low]
    if exact:
        return exact[0]
    if ":" not in low:
        same_base = [i for i in ids if i.lower().rsplit(":", 1)[0] == low]
        if same_base:
            return max(same_base, key=_version)
    base = low.rsplit(":", 1)[0] if ":" in low else low
    prefixed = [i for i in ids if i.lower().startswith(base + "-")]
    if not prefixed:
        return None

    def rank(model_id: str) -> tuple:
        rest = model_id.lower()[len(base) + 1:]
        return (rest.startswith("instruct"), "cpu" in rest, -len(rest.split(":")[0]), _version(model_id))

    return max(prefixed, key=rank)
