"""Copy a library between backends (embedded folder <-> PostgreSQL) without embedding anything again.

Every file's manifest row, passages and stored vectors are read from the source and committed to the
target through the target's own write path (``Store.commit`` / ``PgStore.commit``), a batch of files per
transaction; the model id, each file's owner (``rag.owners``: a user's upload stays theirs) and small
facts (a removed guide) go along, pending files stay pending (with their owners). The
target must be empty or hold the same embedding model. A file the target already holds with the same
content hash and owner is skipped, so an interrupted copy is completed by running it again. Each
target computes the passages' lexical terms from their texts as it always does (PostgreSQL:
``rag.backends.pg_lexicon``), so the copy ranks words exactly as the source did.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.backends import is_database
from rag.ingest.reuse import stored_commit
from rag.store import FileCommit, FileEntry, ModelMismatch, Store, StoreError

META_KEYS = ("guide_removed",)  # facts copied along (rag.library.GUIDE_REMOVED)
BATCH_CHUNKS = 2000


@dataclass
class Migrated:
    source: str
    target: str
    model: str
    files: int = 0
    chunks: int = 0
    skipped: int = 0  # already in the target with the same content
    pending: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"copied {self.files} files ({self.chunks} passages, no re-embedding) from {self.source} to "
                f"{self.target} in {self.seconds:.1f} s; {self.skipped} already there, {self.pending} pending")


def open_store(location: str | Path, timeout: float = 0.0):
    """The store of a library (a folder, or a PostgreSQL URI), without loading any model."""
    if is_database(location):
        from rag.backends.pg_store import PgStore

        return PgStore(str(location), timeout)
    return Store(location)


def _dim(model_id: str) -> int:
    m = re.search(r"\|dim=(\d+)", model_id)
    if not m:
        raise StoreError(f"The source library's model record ({model_id!r}) does not say its dimension.")
    return int(m.group(1))


def _commit(target, items: list[FileCommit], model_id: str) -> None:
    if isinstance(target, Store):
        target.commit(items)
    else:
        target.commit(items, model_id)


def migrate(source: str | Path, target: str | Path, progress: Callable[[str], None] | None = None) -> Migrated:
    """Copy the library at ``source`` into ``target`` (either may be a folder or a PostgreSQL URI)."""
    t0 = time.perf_counter()
    src, dst = open_store(source), open_store(target)
    try:
        model_id = src.model_id()
        if not model_id:
            raise StoreError(f"There is no library at {source} (no embedding model recorded).")
        out = Migrated(getattr(src, "location", str(source)), getattr(dst, "location", str(target)), model_id)
        there = dst.model_id()
        if there and there != model_id:
            raise ModelMismatch(f"The target library ({out.target}) holds vectors of another embedding model "
                                f"('{there.split('|', 1)[0]}'); copy into an empty one.")
        dim = _dim(model_id)
        if isinstance(dst, Store):
            dst.set_model(model_id)
        else:
            dst.set_model(model_id, dim)
        known = dst.files()
        batch: list[FileCommit] = []
        size = 0
        entries = list(src.files().values())
        for n, entry in enumerate(entries, 1):
            there_now = known.get(entry.path)
            if there_now and (there_now.hash, there_now.owner) == (entry.hash, entry.owner):
                out.skipped += 1
                continue
            item = stored_commit(src, entry, dim)
            batch.append(item)
            size += len(item.drafts)
            out.files += 1
            out.chunks += len(item.drafts)
            if size >= BATCH_CHUNKS:
                _commit(dst, batch, model_id)
                batch, size = [], 0
                if progress:
                    progress(f"{n}/{len(entries)} files")
        if batch:
            _commit(dst, batch, model_id)
        for key in META_KEYS:
            if src.meta(key):
                dst.set_meta(key, src.meta(key))
        pending = [p for p in src.pending() if p not in set(dst.files())]
        dst.add_pending(pending, src.owners())
        out.pending = len(pending)
        out.seconds = time.perf_counter() - t0
        return out
    finally:
        src.close()
        dst.close()
