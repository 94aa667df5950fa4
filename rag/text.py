"""Plain-text helpers shared by chunking (ingest) and evidence selection (answers)."""
from __future__ import annotations

import re
from typing import Iterator

# Where a sentence ends: . ! ? : ; (optionally closed by a quote or bracket) then whitespace before
# something that starts a sentence; a line that starts a list item; a blank line.
SENTENCE_END = re.compile(r"(?:(?<=[.!?:;])|(?<=[.!?:;][\"'\u201d\u2019)\]]))\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u2022*\-])"
                          r"|\n(?=\s*(?:[\u2022*\-\u2013]|\d+[.)])\s)|\n\s*\n")


# A table row as the loaders write it (rag.ingest.loaders.tables.row_lines): "Column: value | Column: value",
# on a line of its own. The colons after its column names end no sentence: the row is one sentence.
_ROW_CELL = re.compile(r"[^\s:|][^:|\n]{0,80}: \S")
_LINE = re.compile(r"[^\n]+")


def _is_row(line: str) -> bool:
    cells = line.strip().split(" | ")
    return len(cells) >= 2 and all(_ROW_CELL.match(cell) for cell in cells)


# A line that opens or closes a fenced code block (Markdown; the HTML loader writes <pre> this way). Backticks
# only: a line of tildes is as often a heading's underline (reStructuredText, plain text) as a fence.
_FENCE = re.compile(r"^[ \t]{0,3}```[^`\n]*$", re.MULTILINE)


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank sentence of ``text``, stripped, in order. A table row line is one; a
    fenced code block (its fence lines included; unclosed: to the end) is one, never joined to the prose
    around it (``is_code`` tells it apart)."""
    pos = 0
    if "```" in text:
        fences = _FENCE.finditer(text)
        for opening in fences:
            closing = next(fences, None)
            end = closing.end() if closing else len(text)
            yield from _text_spans(text, pos, opening.start())
            yield from _prose_spans(text, opening.start(), end, split=False)
            pos = end
    yield from _text_spans(text, pos, len(text))


def is_code(sentence: str) -> bool:
    """Whether a span of ``sentence_spans`` is a fenced code block."""
    return _FENCE.match(sentence) is not None


def _text_spans(text: str, begin: int, stop: int) -> Iterator[tuple[int, int]]:
    pos = begin
    if " | " in text[begin:stop]:
        for m in _LINE.finditer(text, begin, stop):
            if _is_row(m.group()):
                yield from _prose_spans(text, pos, m.start())
                yield from _prose_spans(text, m.start(), m.end(), split=False)
                pos = m.end()
    yield from _prose_spans(text, pos, stop)


def _prose_spans(text: str, begin: int, stop: int, split: bool = True) -> Iterator[tuple[int, int]]:
    pos = begin
    cuts = [(m.start(), m.end()) for m in SENTENCE_END.finditer(text, begin, stop)] if split else []
    for end, after in cuts + [(stop, stop)]:
        piece = text[pos:end]
        if piece.strip():
            start = pos + len(piece) - len(piece.lstrip())
            yield start, start + len(piece.strip())
        pos = after
