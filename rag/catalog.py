"""The library as one user sees and manages it: which documents they may see (rag.owners), which they
may remove or re-index, and the library's own copies of dropped files.

Rules: without users (``user`` None) every document may be removed and re-indexed. With users
(LRC_AUTH=password) a user sees the shared documents and their own uploads, and manages only their
own uploads; shared documents are the administrator's (``python -m rag remove``). Whose a document is
comes from the library (the manifest's ``owner``), so every instance on a shared library agrees. Removing a document
deletes the copy the library keeps of a dropped file (under ``settings().uploads_dir``); a file
anywhere else on disk (a folder indexed from the command line, the bundled guide) is never deleted.

The functions take a ``rag.library.Library`` and do blocking work: call them from a worker thread
(``rag.pipeline`` wraps them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rag import owners
from rag.config import settings

READ_ONLY = "Shared document: managed by the administrator with `python -m rag remove`."
_HASH_FOLDER = re.compile(r"[0-9a-f]{16}")  # rag.pipeline.store_upload: uploads/<content hash>/<name>


@dataclass
class LibraryDocument:
    """A library file as the Library view lists it."""

    path: str
    name: str
    kind: str
    pages: int
    passages: int
    size: int  # bytes
    added: float  # when it was (last) indexed: epoch seconds
    model: str  # the embedding model id that made its vectors
    manageable: bool  # this user may remove and re-index it
    guide: bool  # a file of the bundled user guide
    stored: bool  # a copy the library keeps (a dropped file): deleted with it


@dataclass
class Removed:
    name: str
    passages: int  # chunks removed, with their vectors and BM25 terms
    deleted_copy: bool  # the library's stored copy was deleted
    guide: bool  # a guide file: remembered, not added back at the next chat start


def may_manage(owner: str | None, user: str | None) -> bool:
    """Whether ``user`` may remove or re-index a library file with ``owner`` (None: shared): anything
    without users (None), else only their own uploads."""
    return user is None or (owner is not None and owner == user)


def listing(lib, user: str | None) -> list[LibraryDocument]:
    """The documents ``user`` may see, by name."""
    model, guide, uploads = lib.stats().model, settings().docs_corpus, settings().uploads_dir
    docs = [LibraryDocument(e.path, e.name, e.kind or Path(e.path).suffix.lstrip("."), e.pages, e.chunks, e.size,
                            e.indexed_at, model, may_manage(e.owner, user), owners.under(e.path, guide),
                            owners.under(e.path, uploads))
            for e in lib.files() if owners.may_see(e.owner, user)]
    return sorted(docs, key=lambda d: (d.name.lower(), d.path))


def managed(lib, path: str, user: str | None):
    """The manifest entry (rag.store.FileEntry) of a file ``user`` may manage; LookupError or
    PermissionError, with a sentence to show, when there is none."""
    entry = next((e for e in lib.files() if e.path == path), None)
    if entry is None or not owners.may_see(entry.owner, user):
        raise LookupError(f"{Path(path).name} is not in the library (any more).")
    if not may_manage(entry.owner, user):
        raise PermissionError(f"{entry.name}: {READ_ONLY}")
    return entry


def delete_stored(path: str | Path) -> bool:
    """Delete the library's copy of a dropped file (under ``settings().uploads_dir``) and its emptied
    content-hash folder. A file anywhere else is never touched: False."""
    p = Path(path)
    if not p.is_absolute() or ".." in p.parts or not owners.under(p, settings().uploads_dir) or not p.is_file():
        return False
    p.unlink()
    if _HASH_FOLDER.fullmatch(p.parent.name) and not any(p.parent.iterdir()):
        p.parent.rmdir()
    return True


def remove(lib, path: str, user: str | None) -> Removed:
    """Remove one file ``user`` may manage: from the index (``Library.remove``, which also remembers a
    removed guide file) and, for a dropped file, from the uploads folder."""
    entry = managed(lib, path, user)
    passages = lib.remove(entry.path)
    return Removed(entry.name, passages, delete_stored(entry.path), owners.under(entry.path, settings().docs_corpus))
