"""Where the files that ship with the app live: the checkout's own, or the copies inside the installed package.

The repository keeps them at its top level, where `make run` and the tests use them: the user guide
(docs_corpus/), the chat's Chainlit files (app.py, chainlit.md, .chainlit/config.toml, public/ with the
Library view element), the "auto" engine's routing.toml, the in-browser page (browser/page/) and the model
builder `rag models pull` runs (scripts/build_model.py). A wheel
cannot put files beside site-packages, so the build copies them into ``rag/_bundled/`` (setup.py reads
``FILES`` from here). ``path(name)`` is that copy when it exists, else the checkout's file: an editable
install or a plain checkout has no ``_bundled`` folder and keeps using the repository's files.

Standard library only: setup.py runs this file without importing ``rag`` (its dependencies may not be
installed yet when a wheel is built).
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent  # the repository root, when this is a checkout
INSTALLED = PACKAGE_DIR / "_bundled"

# paths relative to the repository root; a folder ships whole (MANIFEST.in puts the same into an sdist)
FILES = ("app.py", "chainlit.md", "routing.toml", ".chainlit/config.toml", "public", "docs_corpus",
         "browser/page", "scripts/build_model.py")  # the last: `rag models pull` builds models with it
# what `local-rag-chat` copies into Chainlit's working folder (Chainlit reads them from there)
CHAINLIT_FILES = ("chainlit.md", ".chainlit/config.toml", "public")


def installed() -> bool:
    """True when this ``rag`` is an installed copy that carries its own bundled files."""
    return INSTALLED.is_dir()


def root() -> Path:
    """The folder the bundled files are found under."""
    return INSTALLED if installed() else CHECKOUT


def path(name: str) -> Path:
    """One bundled file or folder, ``name`` as in ``FILES`` (or below one of them)."""
    return root() / name
