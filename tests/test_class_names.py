"""Each class name in rag/ and engines/ names one class: two ``Failed`` (a pipeline event and an ingest
record) read alike in a traceback, a grep or an import and are not the same thing."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from rag.config import REPO_ROOT


def duplicate_class_names(*roots: Path) -> dict[str, list[str]]:
    """Class name -> its places ("path:line"), for every name defined more than once under ``roots``
    (nested classes too; the installed copy of bundled files, rag/_bundled, is not code of ours)."""
    places: dict[str, list[str]] = defaultdict(list)
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "_bundled" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.ClassDef):
                    places[node.name].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return {name: where for name, where in places.items() if len(where) > 1}


def test_every_class_name_is_unique_in_rag_and_engines():
    assert duplicate_class_names(REPO_ROOT / "rag", REPO_ROOT / "engines") == {}


def test_the_check_finds_a_duplicate(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("class Failed:\n    pass\n\n\nclass Other:\n    pass\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    class Failed(Exception):\n        pass\n")
    assert duplicate_class_names(pkg) == {"Failed": ["pkg/a.py:1", "pkg/sub/b.py:2"]}
