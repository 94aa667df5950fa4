"""What every loader returns: a ``Document`` of ``Block``s (headings and paragraphs) with pages and
character offsets, which the chunker turns into passages."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Block:
    text: str
    page: int | None = None  # 1-based page for PDFs
    kind: str = "text"  # "text" | "heading"
    level: int = 0  # heading level, 1 = top
    start: int = 0  # character offset in the page text (PDF) or the file text
    ocr: bool = False  # read by OCR from a scanned page or an image (rag.ingest.loaders.ocr)


@dataclass
class Document:
    source: str
    kind: str  # "pdf" | "docx" | "odt" | "pptx" | "image" | "markdown" | "rst" | "html" | "text"
    blocks: list[Block]
    title: str = ""
    pages: int = 0
    contents_pages: list[int] = field(default_factory=list)  # recognised contents/index pages, not indexed
    warnings: list[str] = field(default_factory=list)  # what was left out, said in the ingest report
    ocr_pages: list[int] = field(default_factory=list)  # pages whose text was read by OCR

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


_PARAGRAPH = re.compile(r"\S(?:.*?)(?=\n[ \t]*\n|\Z)", re.S)


def paragraphs(text: str, base: int = 0, page: int | None = None) -> list[Block]:
    """Text blocks separated by blank lines; ``start`` is ``base`` + the offset in ``text``."""
    out = []
    for m in _PARAGRAPH.finditer(text):
        chunk = m.group(0).rstrip()
        if chunk:
            out.append(Block(chunk, page, "text", 0, base + m.start()))
    return out


def fenced(code: str, info: str = "") -> str:
    """``code`` as a fenced code block, the way every loader writes one (``rag.text.sentence_spans`` keeps it
    apart from the prose); a fence inside the code is broken up, or it would end the block."""
    return f"```{info}\n" + code.strip("\n").rstrip().replace("```", "` ``") + "\n```"


# Word-processor paragraph styles for code, one line a paragraph (LibreOffice's "Preformatted Text", Word's "HTML
# Preformatted", "Plain Text" and "Macro Text", and the names people give their own)
_CODE_STYLE = re.compile(r"(preformatted text|html preformatted|html code|plain text|macro text|code|code block|"
                         r"source code|source text|listing)", re.I)


def code_style(name: str | None) -> bool:
    """Whether a word processor's paragraph style ``name`` is one for code (``CodeLines`` gathers its lines)."""
    return bool(name) and bool(_CODE_STYLE.fullmatch(name.strip()))


class CodeLines:
    """Consecutive code paragraphs of a word-processor document (one line each, blank ones included) gathered
    into one fenced code block, as the HTML, Markdown and reStructuredText loaders write theirs."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks  # where the block goes when the code ends
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line.rstrip())

    def end(self) -> None:
        """The code so far (if any line has text) as one Block; call it before anything that is not code."""
        if any(line.strip() for line in self.lines):
            self.blocks.append(Block(fenced("\n".join(self.lines)), None, "text"))
        self.lines = []


def joined_offsets(blocks: list[Block]) -> list[Block]:
    """``blocks`` with each ``start`` set to the block's offset in their texts joined by newlines."""
    pos = 0
    for b in blocks:
        b.start = pos
        pos += len(b.text) + 1
    return blocks


def first_heading(blocks: list[Block]) -> str:
    for b in blocks:
        if b.kind == "heading":
            return b.text
    return ""
