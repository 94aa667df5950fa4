"""`python -m rag bench NAME [args...]` runs `bench/bench_NAME.py` (or every benchmark with `all`)."""
from __future__ import annotations

import argparse
import runpy
import sys

from rag.config import REPO_ROOT

HELP = "run a benchmark from bench/ (engine, foundry, ingest, query, ... or all)"
BENCH_DIR = REPO_ROOT / "bench"
ALIASES = {"pdftext": "pdf_text"}  # `rag bench pdftext` runs bench/bench_pdf_text.py


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help=f"one of: {', '.join(available()) or '(none yet)'}, or all")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark script")


def _run_one(name: str, rest: list[str]) -> int:
    name = ALIASES.get(name, name)
    script = BENCH_DIR / f"bench_{name}.py"
    if not script.exists():
        print(f"No benchmark named '{name}'. Available: {', '.join(available())}", file=sys.stderr)
        return 2
    old_argv = sys.argv
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:  # scripts end with sys.exit(main())
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = old_argv
    return 0


def run(args: argparse.Namespace) -> int:
    names = available() if args.name == "all" else [args.name]
    status = 0
    for name in names:
        print(f"== bench {name}", flush=True)
        status = _run_one(name, args.rest) or status
    return status
