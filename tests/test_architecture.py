"""The import rules of docs/ARCHITECTURE.md hold, and the check that enforces them can fail.

The rules are import-linter contracts in pyproject.toml; ``lint-imports`` (installed with the test
dependencies) checks them against the real import graph. The second test plants a forbidden import in
a copy of the tree and expects the same check to reject it, naming the rule.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: install the test requirements (`make setup`).", pytrace=False)
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=300)


def test_the_tree_keeps_the_import_rules():
    res = lint(REPO_ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


def _copy(tmp: Path) -> Path:
    for name in ("rag", "engines"):
        shutil.copytree(REPO_ROOT / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


@pytest.mark.parametrize("module, planted, rule", [
    ("engines/base.py", "from rag.config import settings", "engines/ imports nothing from rag/"),
    ("rag/store.py", "import rag.pipeline", "rag/ layers"),
    ("rag/search/__init__.py", "import rag.ingest", "rag/ layers"),
    ("engines/foundry/engine.py", "import engines.onnx.engine", "each engine is its own room"),
])
def test_a_forbidden_import_is_rejected(tmp_path, module, planted, rule):
    root = _copy(tmp_path)
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted by the test\n", encoding="utf-8")
    res = lint(root)
    assert res.returncode != 0, res.stdout
    assert "BROKEN" in res.stdout and rule in res.stdout, res.stdout


def test_app_never_names_an_engine():
    """What differs between engines is a property of the engine (e.g. ``start_hint``), not an
    ``if engine == ...`` in the UI; the chat (app.py, rag/chat/) talks to engines through rag.pipeline
    and the registry."""
    from engines.registry import ENGINES

    for path in [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "rag" / "chat").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not strings & set(ENGINES), (path.name, strings & set(ENGINES))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not [m for m in imported if m.startswith("engines.") and m not in ("engines.base", "engines.registry")]
