"""Plain-text helpers shared by chunking (ingest) and evidence selection (answers)."""
from __future__ import annotations

import re
from typing import Iterator

# Where a sentence ends: . ! ? : ; (optionally closed by a quote or bracket) then whitespace before
# something that starts a sentence; a line that starts a list item; a blank line.
SENTENCE_END = re.compile(r"(?:(?<=[.!?:;])|(?<=[.!?:;][\"'\u201d\u2019)\]]))\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u2022*\-])"
                          r"|\n(?=\s*(?:[\u2022*\-\u2013]|\d+[.)])\s)|\n\s*\n")


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank sentence of ``text``, stripped, in order."""
    pos = 0
    cuts = [(m.start(), m.end()) for m in SENTENCE_END.finditer(text)] + [(len(text), len(text))]
    for end, after in cuts:
        piece = text[pos:end]
        if piece.strip():
            start = pos + len(piece) - len(piece.lstrip())
            yield start, start + len(piece.strip())
        pos = after
