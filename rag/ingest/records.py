"""Typed records between the ingest stages.

    planner -> FileJob -> loader (process or thread) -> Loaded | Unchanged | Failed
            -> embedder (vectors for Loaded.vector_texts) -> rag.store.FileCommit -> store + search index

``LoaderConfig``, ``FileJob`` and the load results also cross the pipe to a loader process (pickled),
so they hold plain data only. ``IngestProgress`` and ``IngestReport`` are what a caller of
``Ingester.ingest`` sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from rag.ingest.chunking import ChunkDraft
    from rag.ingest.loaders import Document


@dataclass(frozen=True)
class LoaderConfig:
    """What a loader (process or thread) needs: the model's tokenizer folder and window (for the
    chunker), the size limit, and the loader processes' nice value."""

    model_path: str
    window: int
    max_file_mb: float = 50.0
    nice: int = 0


@dataclass(frozen=True)
class FileJob:
    """A file to load: its path and stat when planned, and the content hash the index holds for it
    (None for a new file): a file whose bytes still hash the same is not chunked again."""

    path: Path
    size: int
    mtime_ns: int
    known_hash: str | None = None


@dataclass
class Loaded:
    """A file loaded and chunked (``document.blocks`` is emptied when it comes from a loader process:
    past this point only its kind, pages and contents pages are needed)."""

    job: FileJob
    hash: str
    document: "Document"
    drafts: "list[ChunkDraft]"

    @property
    def vector_texts(self) -> list[str]:
        """Every text to embed for this file, in the order of its drafts' views."""
        return [t for d in self.drafts for t in d.vector_texts]


@dataclass
class Unchanged:
    """Same content as indexed (only the stat changed): nothing to embed."""

    job: FileJob
    hash: str


@dataclass
class Failed:
    """A file that cannot be indexed; ``reason`` names the file and says why."""

    job: FileJob
    reason: str


LoadResult = Union[Loaded, Unchanged, Failed]


@dataclass
class IngestProgress:
    stage: str  # "loading" | "embedding" | "saving"
    file: str
    done: int  # files finished so far
    total: int  # files in this run


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, readable reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): in a folder, not indexed
    chunks_added: int = 0
    seconds: float = 0.0
    skipped_contents_pages: int = 0
    # where the time went (seconds): waiting for the loaders, embedding, saving (SQLite + search index)
    wait_s: float = 0.0
    embed_s: float = 0.0
    save_s: float = 0.0

    def skipped_by_reason(self) -> dict[str, list[str]]:
        """Skipped files grouped by why (unsupported type, hidden, a link outside the folder)."""
        out: dict[str, list[str]] = {}
        for f, why in self.skipped:
            out.setdefault(why, []).append(f)
        return out

    def skipped_lines(self, shown: int = 10) -> list[str]:
        """One line per reason: "N file(s), why: name, name ..." (at most ``shown`` names)."""
        lines = []
        for why, files in self.skipped_by_reason().items():
            names = ", ".join(Path(f).name for f in files[:shown])
            more = f" and {len(files) - shown} more" if len(files) > shown else ""
            lines.append(f"{len(files)} file(s), {why}: {names}{more}")
        return lines

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.unchanged)} unchanged",
                 f"{len(self.failed)} failed"] + ([f"{len(self.skipped)} skipped"] if self.skipped else [])
        return f"{', '.join(parts)}; {self.chunks_added} chunks in {self.seconds:.1f} s"
