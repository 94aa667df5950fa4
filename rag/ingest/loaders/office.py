"""What the office-package loaders (.docx, .pptx, .odt) share: checking that the file is a zip package (with
a readable error for an old binary or password-protected file), opening it, and the document's own title."""
from __future__ import annotations

import importlib
import io
from pathlib import Path

from rag.ingest.loaders.errors import CorruptFile, LoaderError

OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a 97-2003 binary file (.doc, .ppt), or a password-protected package
ZIP_HEADER = b"PK\x03\x04"


def invalid(path: Path, kind: str, reason: str) -> CorruptFile:
    return CorruptFile(path, f"not a valid {kind}: {reason}"[:240])


def check_package(path: Path, data: bytes, kind: str, legacy: str) -> None:
    """A CorruptFile unless ``data`` starts like a zip package; ``legacy``: what an OLE file is and how to
    save it instead."""
    if data.startswith(OLE_HEADER):
        raise invalid(path, kind, legacy)
    if not data.startswith(ZIP_HEADER):
        raise invalid(path, kind, "not a zip package")


def open_package(path: Path, data: bytes, *, module: str, package: str, factory: str, kind: str, legacy: str):
    """``module.factory(BytesIO(data))`` (e.g. docx.Document), or a LoaderError saying why not. ``package``:
    the PyPI name for the not-installed message; ``kind``: "Word document (.docx)"; ``legacy``: what an OLE
    file is ("an old Word 97-2003 file (.doc)") and how to save it instead."""
    try:
        lib = importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LoaderError(path, f"{package} is not installed: {exc}") from None
    check_package(path, data, kind, legacy)
    try:
        return getattr(lib, factory)(io.BytesIO(data))
    except Exception as exc:  # zipfile, lxml and the python-docx/-pptx readers raise many kinds on damaged packages
        raise invalid(path, kind, f"{type(exc).__name__}: {exc}") from None


def core_title(doc) -> str:
    """The title in the package's document properties, or ""."""
    try:
        return (doc.core_properties.title or "").strip()
    except Exception:
        return ""
