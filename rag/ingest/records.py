"""Typed records between the ingest stages.

    planner -> FileJob -> loader (process or thread) -> OcrPage* then Loaded | Unchanged | FileFailed
            -> embedder (vectors for Loaded.vector_texts) -> rag.store.FileCommit -> store + search index

``LoaderConfig``, ``FileJob``, ``OcrPage`` and the load results also cross the pipe to a loader process
(pickled), so they hold plain data only. ``IngestProgress`` and ``IngestReport`` are what a caller of
``Ingester.ingest`` sees (an ``OcrPage`` becomes an ``IngestProgress`` of stage "ocr").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from rag.ingest.loaders.ocr import OcrOptions

if TYPE_CHECKING:
    from rag.ingest.chunking import ChunkDraft
    from rag.ingest.loaders import Document


@dataclass(frozen=True)
class LoaderConfig:
    """What a loader (process or thread) needs: the model's tokenizer folder and window (for the
    chunker), the size limit, the loader processes' nice value, how OCR runs, and the loader processes'
    limits (``rag.ingest.limits``: MiB of memory, seconds of CPU per file; 0: none)."""

    model_path: str
    window: int
    max_file_mb: float = 50.0
    nice: int = 0
    ocr: OcrOptions = field(default_factory=OcrOptions)
    memory_mb: int = 0
    cpu_seconds: int = 0


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
class FileFailed:
    """A file that cannot be indexed; ``reason`` names the file and says why."""

    job: FileJob
    reason: str


LoadResult = Union[Loaded, Unchanged, FileFailed]


@dataclass(frozen=True)
class OcrPage:
    """A loader is about to wait for OCR of ``page`` (a PDF page or an image frame), the ``step``-th
    of the ``steps`` pages this file has read by OCR. Sent before the file's load result."""

    path: str
    page: int
    step: int
    steps: int


class IngestStopped(BaseException):
    """Raised by a progress callback to stop the run between batches (told "loading" when the next file
    arrives, "embedding" before a batch is embedded; never inside a commit): what was committed stays, the
    rest stays pending. A ``BaseException``, because the ingester ignores ordinary errors of its callbacks."""


@dataclass
class IngestProgress:
    stage: str  # "loading" | "ocr" | "embedding" | "saving"
    file: str
    done: int  # files finished so far
    total: int  # files in this run
    page: int = 0  # stage "ocr": the page being read (its number in the file)
    step: int = 0  # stage "ocr": that page is the step-th of the file's ``steps`` pages read by OCR
    steps: int = 0

    def describe(self) -> str:
        """What is happening, for a person: "OCR page 3/12 of scan.pdf", "embedding notes.md"."""
        if self.stage == "ocr":
            return f"OCR page {self.step}/{self.steps} of {self.file}"
        return f"{self.stage} {self.file}"


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, readable reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): in a folder, not indexed
    chunks_added: int = 0
    reused: list[str] = field(default_factory=list)  # of added/updated: passages copied from the same content
    seconds: float = 0.0
    skipped_contents_pages: int = 0
    ocr_pages: int = 0  # pages (of scans and images) whose text was read by OCR
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what was left out of an indexed file)
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
        ocr = f" ({self.ocr_pages} page(s) read by OCR)" if self.ocr_pages else ""
        reused = f" ({len(self.reused)} file(s) with content already stored: not embedded)" if self.reused else ""
        return f"{', '.join(parts)}{reused}; {self.chunks_added} chunks{ocr} in {self.seconds:.1f} s"

    def warning_lines(self) -> list[str]:
        """One line per note on an indexed file: "scan.pdf: OCR stopped at 50 of 500 scanned pages; ..."."""
        return [f"{Path(f).name}: {text}" for f, text in self.warnings]
