"""`python -m rag <command>`: a thin dispatcher. Each command lives in ``rag/cmd/<name>.py`` and
provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import rag.cmd


def _commands() -> dict:
    found = {}
    for info in pkgutil.iter_modules(rag.cmd.__path__):
        if not info.name.startswith("_"):
            found[info.name] = f"rag.cmd.{info.name}"
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = _commands()
    parser = argparse.ArgumentParser(prog="python -m rag", description="Local RAG Chat command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # only the chosen command's module is imported (torch imports are slow)
    chosen = argv[0] if argv and argv[0] in commands else None
    for name in sorted(commands):
        if chosen and name != chosen:
            sub.add_parser(name)
            continue
        module = importlib.import_module(commands[name])
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
