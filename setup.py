"""The one build step pyproject.toml cannot say: copy the files the app ships (``rag.bundled.FILES``: the
guide, the Chainlit files, routing.toml, the in-browser page) into the wheel as ``rag/_bundled/``, where
``rag.bundled`` finds them once installed. The repository keeps them at its top level for `make run`.
Everything else about the package is in pyproject.toml."""
import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLED = runpy.run_path(str(HERE / "rag" / "bundled.py"))  # standard library only: rag's deps may be absent
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", ".DS_Store")


class BuildWithBundledFiles(build_py):
    """build_py, then the bundled files beside the package (not in editable mode: that uses the checkout)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "rag" / "_bundled"
        for name in BUNDLED["FILES"]:
            src, dst = HERE / name, target / name
            if not src.exists():
                raise SystemExit(f"setup.py: the bundled file {name} is missing from {HERE}")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=SKIP, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildWithBundledFiles})
