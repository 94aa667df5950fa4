"""What several benchmark scripts share (not a benchmark itself: `rag bench` runs bench_*.py only).

- :class:`Service`: a real Foundry Local (scripts/foundry_local.py) in a child process, ready when it
  prints READY; :func:`foundry_for` starts one only when a benchmark needs Foundry and none is configured.
- :func:`write_section`: replace (or insert) one "## ..." section of docs/BENCHMARKS.md.
- :func:`machine_note`, :func:`command_line`: what a section says about where and how it was run.
"""
from __future__ import annotations

import json

import asyncio
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO_ROOT / "docs" / "BENCHMARKS.md"


class Service:
    """scripts/foundry_local.py in a child process, ready when it prints READY."""

    def __init__(self, model_dir: Path, root: Path):
        self.root = root
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(home), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, str(REPO_ROOT / "scripts" / "foundry_local.py"), "--model", str(model_dir),
               "--port", "0", "--data-dir", str(root / "data"), "--state-file", str(root / "state.json"), "--stop-with-parent"]
        self.t0 = time.perf_counter()
        self.log = open(root / "launcher.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True,
                                     cwd=REPO_ROOT, start_new_session=True)
        self.base_url = self.model = ""
        self.ready_seconds = 0.0

    def wait_ready(self, timeout: float = 120.0) -> None:
        found = threading.Event()

        def read():
            for line in self.proc.stdout:
                if line.startswith("READY "):
                    fields = dict(p.split("=", 1) for p in line.split()[1:])
                    self.base_url, self.model = fields["base_url"], fields["model"]
                    self.ready_seconds = time.perf_counter() - self.t0
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("Foundry Local did not start; see " + str(self.root / "launcher.log"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def foundry_configured() -> bool:
    """A Foundry endpoint is configured or discoverable (FOUNDRY_BASE_URL, the launcher's state file,
    `foundry service status`): the Foundry engine would not need one started for it."""
    from engines.base import EngineUnavailable
    from engines.foundry.discovery import discover
    from rag.config import settings

    cfg = settings().engine_config("foundry")
    try:
        asyncio.run(discover(cfg["base_url"], cfg["state_file"]))
    except EngineUnavailable:
        return False
    return True


def foundry_for(engines: list[str], model: str = "smollm2", log=print) -> Service | None:
    """If one of ``engines`` is "foundry" and no service is configured: start a real Foundry Local
    with the provisioned ``model`` (its own data folder and HOME in a temporary folder, a free
    loopback port) and point this process's Foundry settings at it (FOUNDRY_BASE_URL, FOUNDRY_MODEL;
    set before the engine registry creates its Foundry engine). The caller stops it (``stop()``)."""
    if "foundry" not in engines or foundry_configured():
        return None
    from engines.onnx.models import ModelCatalog
    from rag.config import settings

    model_dir = ModelCatalog(**settings().catalog_config()).resolve(model)
    service = Service(model_dir, Path(tempfile.mkdtemp(prefix="bench-foundry-")))
    service.wait_ready()
    os.environ["FOUNDRY_BASE_URL"] = service.base_url
    os.environ["FOUNDRY_MODEL"] = service.model
    log(f"Foundry Local started for this run in {service.ready_seconds:.1f}s at {service.base_url} ({service.model})")
    return service


def _block(heading: str, body: str) -> list[str]:
    return [heading + "\n", "\n", body.strip("\n") + "\n", "\n"]


def _replace(lines: list[str], prefix: str, heading: str, block: list[str], lo: int, hi: int,
             insert_at: int | None = None) -> None:
    """Replace the ``heading`` block among lines[lo:hi] (up to the next ``prefix`` heading) with
    ``block``, or insert it at ``insert_at`` (default: hi)."""
    starts = [i for i in range(lo, hi) if lines[i].startswith(prefix)]
    mine = next((i for i in starts if lines[i].rstrip("\n") == heading), None)
    if mine is None:
        at = hi if insert_at is None else insert_at
        lines[at:at] = block
    else:
        end = next((i for i in starts if i > mine), hi)
        lines[mine:end] = block


def write_section(title: str, body: str, sub: str | None = None, intro: str = "", path: Path = BENCHMARKS) -> None:
    """Write the section ``## {title}`` of docs/BENCHMARKS.md (up to the next "## " heading): with
    ``body`` as a whole, or, with ``sub``, only its subsection ``### {sub}`` (other subsections, e.g.
    other model pairs, stay; ``intro`` leads a new section). A missing section is inserted before the
    first one (newest first); a missing subsection goes at the section's end."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    heading = f"## {title}"
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    mine = next((i for i in starts if lines[i].rstrip("\n") == heading), None)
    if sub is None:
        _replace(lines, "## ", heading, _block(heading, body), 0, len(lines), starts[0] if starts else None)
    elif mine is None:
        section = _block(heading, intro) + _block(f"### {sub}", body) if intro else \
            [heading + "\n", "\n"] + _block(f"### {sub}", body)
        at = starts[0] if starts else len(lines)
        lines[at:at] = section
    else:
        end = next((i for i in starts if i > mine), len(lines))
        _replace(lines, "### ", f"### {sub}", _block(f"### {sub}", body), mine + 1, end)
    path.write_text("".join(lines), encoding="utf-8")


def report(title: str, lines: list[str], summary: dict, write: bool) -> int:
    """End a benchmark: with ``write``, the section ``title`` of BENCHMARKS.md becomes ``lines`` plus the
    JSON summary; the summary is always the last line printed."""
    if write:
        body = "\n".join([*lines, "", "JSON summary (last line of the run):", f"`{json.dumps(summary)}`"])
        write_section(title, body)
        print(f"wrote the section '{title}' of {BENCHMARKS}")
    print(json.dumps(summary))
    return 0


def machine_note() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPU cores, no GPU, Python {platform.python_version()}, load average {load} "
            f"at the end of the run (other work shares this machine: treat times as lower bounds)")


def command_line(name: str, argv: list[str]) -> str:
    return f"python -m rag bench {name} " + shlex.join(argv)


def today() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def python_docs_drafts(chunker, limit: int | None = None, datasets: Path | None = None) -> list:
    """The shared python-docs corpus chunked (files in name order; files a loader refuses left out),
    stopping once ``limit`` passages are there."""
    from rag.config import settings
    from rag.ingest import loaders

    drafts: list = []
    for f in sorted(((datasets or settings().datasets_dir) / "python-docs").rglob("*.rst.txt")):
        try:
            drafts.extend(chunker.chunk(loaders.load(f)))
        except loaders.LoaderError:
            pass
        if limit is not None and len(drafts) >= limit:
            break
    return drafts
