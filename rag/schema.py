"""Plain data passed between the retrieval modules, the pipeline and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    """Retrieval modes. ``OFF`` (answer without the documents) exists for the pipeline only; the
    search layer knows the other three."""

    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"
    OFF = "off"

    @classmethod
    def search_modes(cls) -> list["Mode"]:
        return [cls.HYBRID, cls.DENSE, cls.LEXICAL]

    @classmethod
    def values(cls, search_only: bool = False) -> list[str]:
        return [m.value for m in (cls.search_modes() if search_only else cls)]

    @classmethod
    def parse(cls, value: "str | Mode", search_only: bool = False) -> "Mode":
        """``value`` as a Mode, or ValueError naming the choices."""
        allowed = cls.values(search_only)
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"unknown retrieval mode '{value}' (use one of: {', '.join(allowed)})")
        return cls(text)


# what an answer shows: the documents' best sentences then the model's answer, the model only, or the
# quoted sentences only (no model)
STYLES = ("quote+answer", "answer", "quote")


def with_context(context: str | None, text: str) -> str:
    return f"{context}\n{text}" if context else text


# A passage read by OCR (a scanned page, an image) is stored with this mark before its heading: the
# lightest way to keep it (no store column). It cannot clash with a real heading (the chunker
# collapses whitespace, and \x1f is whitespace to str.split). ``Chunk`` takes it off into ``Chunk.ocr``.
OCR_MARK = "\x1fOCR\x1f"


def stored_heading(heading: str, ocr: bool) -> str:
    """The heading as the store keeps it: marked when the passage was read by OCR."""
    return OCR_MARK + heading if ocr else heading


@dataclass
class Chunk:
    id: int  # row in the store; stable while the chunk lives
    text: str
    source: str  # absolute path of the file it came from
    page: int | None = None  # 1-based page for PDFs, None otherwise
    start: int = 0  # character offsets in the page/section text
    end: int = 0
    heading: str = ""  # nearest heading above the chunk, if any
    doc_id: str = ""  # file-level id (corpus id for eval datasets)
    context: str = ""  # heading path prefixed when embedding and matching (rag.ingest.chunking)
    ocr: bool = False  # read by OCR (a scanned page or an image): its text may hold misread words

    def __post_init__(self):
        if self.heading.startswith(OCR_MARK):  # as stored (stored_heading)
            self.heading = self.heading[len(OCR_MARK):]
            self.ocr = True

    @property
    def matched_text(self) -> str:
        """The text retrieval matches: context prefix + text (what the embedder and BM25 read)."""
        return with_context(self.context, self.text)

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    def citation(self) -> str:
        """Where the passage is, for the reader: "scan.pdf, p. 3" in a file with pages; in one without
        (Markdown, HTML, Word, text) the section it is in, "guide.md § Installing" (ten passages of one
        manual cited as "manual.html" alone told the reader nothing); " (OCR)" when read by OCR."""
        if self.page:
            where = f"{self.name}, p. {self.page}"
        elif self.heading.strip():
            where = f"{self.name} § {clip(self.heading, SECTION_CHARS)}"
        else:
            where = self.name
        return f"{where} (OCR)" if self.ocr else where


SECTION_CHARS = 60  # a section's heading in a citation, at most (cut at a word, with "…")


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters: cut at the last word that fits, with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.-") + "…"


@dataclass
class Hit:
    chunk: Chunk
    score: float  # the fused (or single-mode) score the ranking used
    rank: int  # 1-based
    scores: dict = field(default_factory=dict)  # per mode, e.g. {"dense": .61, "lexical": 12.3}


@dataclass
class Retrieval:
    """What the library found for a question, and whether it is worth answering from."""

    hits: list[Hit]
    library_empty: bool = False  # nothing indexed yet
    relevant: bool = False  # some hit is about the question (rag.search.relevance)
    notices: list[str] = field(default_factory=list)  # e.g. the re-ranker failed and was left out
