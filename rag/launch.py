"""`local-rag-chat`: the chat from any folder, with the guide, config and app that ship in the package.

Chainlit reads ``.chainlit/config.toml``, ``chainlit.md`` and ``public/`` from its working folder (its
``CHAINLIT_APP_ROOT``, else the current folder) and writes ``.files/`` and ``.chainlit/translations/``
there. The launcher gives it a folder of its own in the data folder (``settings().data_dir/chainlit``,
set as ``CHAINLIT_APP_ROOT``; the current folder stays, so relative LRC_ paths and a ``.env`` keep working),
copies the bundled files in at every start (so an upgrade brings its own config; a copy, not a link,
because Chainlit writes beside them), then becomes ``chainlit run <bundled app.py>``: the process is
replaced, so a SIGTERM reaches the server itself.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from rag import bundled
from rag.config import offline_env, settings

WORKDIR_NAME = "chainlit"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local-rag-chat", description=(
        "Start Local RAG Chat (Chainlit) with the bundled guide and config; data in LRC_DATA_DIR."))
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--headless", action="store_true", help="do not open a browser window")
    return parser.parse_args(argv)


def prepare_workdir(workdir: Path) -> Path:
    """``workdir`` holding fresh copies of the bundled Chainlit files; what Chainlit wrote there stays."""
    for name in bundled.CHAINLIT_FILES:
        src, dst = bundled.path(name), workdir / name
        if not src.exists():
            raise FileNotFoundError(f"the bundled file {src} is missing: reinstall local-rag-chat")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
    return workdir


def command(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "chainlit", "run", str(bundled.path("app.py")),
           "--host", args.host, "--port", str(args.port)]
    return cmd + (["--headless"] if args.headless else [])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = settings().data_dir.resolve() / WORKDIR_NAME
    try:
        prepare_workdir(workdir)
    except OSError as exc:
        print(f"local-rag-chat cannot prepare {workdir}: {exc}", file=sys.stderr)
        return 1
    env = offline_env(dict(os.environ))
    env["CHAINLIT_APP_ROOT"] = str(workdir)
    cmd = command(args)
    os.execve(cmd[0], cmd, env)  # never returns: the server takes this process over
    return 0  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(main())
