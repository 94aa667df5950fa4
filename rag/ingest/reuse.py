"""Content the library already holds: a file whose bytes it stored under another path is not read,
chunked or embedded again; its passages and vectors are copied from that path (``stored_commit``).

That is a rename or a move (the old path is then removed by whoever saw it go: ``rag.watch``) and the
same content at two paths (each keeps its own copy of the passages, so each is cited under its own
path), also when both arrive in one run: the first is loaded and embedded, the others are copied from
it once it is stored (its ``twin``). The planner asks ``reusable`` which planned files qualify: only a
file of the same size as a stored or another planned one is hashed here (the loader hashes the others
as it reads them), and a stored source is never a file the same run writes (two files swapping names
are loaded as usual). The passages were made by
the same chunker and model (the store holds one model's vectors), so a copy is what loading and
embedding would have made. ``rag.backends.migrate`` copies files between libraries the same way.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.ingest.chunking import ChunkDraft
from rag.ingest.loading import file_hash
from rag.ingest.records import FileJob
from rag.schema import with_context
from rag.store import FileCommit, FileEntry


class StoredRows(Protocol):
    def file_rows(self, path: str, dim: int) -> tuple[list[dict], np.ndarray]: ...


@dataclass(frozen=True)
class Reuse:
    """A planned file whose content the library holds under ``source``, or will once the run has stored
    its ``twin`` (a file of the same run with that content): copied, not embedded."""

    job: FileJob
    hash: str
    source: FileEntry | None = None
    twin: str = ""


def stored_commit(store: StoredRows, entry: FileEntry, dim: int, job: FileJob | None = None,
                  display_name: str | None = None, owner: str | None = None) -> FileCommit:
    """``entry``'s stored passages and vectors as a commit: for ``entry`` itself (``job`` None: a copy to
    another library), or for the file of ``job`` with the same content (its own path, stat, name, owner)."""
    rows, vectors = store.file_rows(entry.path, dim)
    drafts = [ChunkDraft(text=r["text"], embed_text=with_context(r["context"], r["text"]), page=r["page"],
                         start=r["start"] or 0, end=r["end"] or 0, heading=r["heading"] or "", tokens=r["tokens"] or 0,
                         views=[""] * int(r["views"] or 1) if int(r["views"] or 1) > 1 else [])
              for r in rows]
    if job is None:
        return FileCommit(entry.path, entry.display_name, entry.hash, entry.size, entry.mtime_ns, entry.kind,
                          entry.pages, entry.contents_pages, drafts, vectors, entry.owner)
    return FileCommit(str(job.path), display_name or job.path.name, entry.hash, job.size, job.mtime_ns, entry.kind,
                      entry.pages, entry.contents_pages, drafts, vectors, owner)


def reusable(jobs: list[FileJob], known: dict[str, FileEntry]) -> tuple[list[Reuse], list[FileJob], list[Reuse]]:
    """(the planned files whose content is stored under another path, the files still to load, the files
    with the same content as one of those: copied from it after the run)."""
    writing = {str(j.path) for j in jobs}
    by_size: dict[int, list[FileEntry]] = {}
    for e in known.values():
        if e.path not in writing and e.chunks:
            by_size.setdefault(e.size, []).append(e)
    sizes = Counter(j.size for j in jobs)
    first: dict[str, str] = {}  # content hash -> the file of this run that is loaded for it
    now: list[Reuse] = []
    load: list[FileJob] = []
    after: list[Reuse] = []
    for job in jobs:
        h = _hash(job) if job.size in by_size or sizes[job.size] > 1 else None
        source = next((e for e in by_size.get(job.size, []) if e.hash == h), None) if h else None
        if h is None or h == job.known_hash:  # not hashed, or its own content unchanged (the loader says so)
            load.append(job)
            if h:
                first.setdefault(h, str(job.path))
        elif source is not None:
            now.append(Reuse(job, h, source))
        elif h in first:
            after.append(Reuse(job, h, twin=first[h]))
        else:
            first[h] = str(job.path)
            load.append(job)
    return now, load, after


def _hash(job: FileJob) -> str | None:
    try:
        return file_hash(Path(job.path).read_bytes())
    except OSError:
        return None  # the loader reports it
