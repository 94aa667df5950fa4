"""Tables as passages a question can find: each row becomes one line that keeps its column names
("Model: X | Context: 4096"), so a question about one cell retrieves the row that holds it. Loaders
(Markdown, HTML, DOCX, ...) hand their parsed cells here and get text Blocks back."""
from __future__ import annotations

from rag.ingest.loaders.base import Block

MAX_CELL_CHARS = 300  # one cell is never a whole passage


def _clean(cell: str) -> str:
    text = " ".join(str(cell).split())
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"


def row_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """One line per row: "Column: value | Column: value" (empty cells left out). Without a header (or
    for cells past its end) a cell stands alone. A row that is all empty is dropped."""
    names = [_clean(h) for h in header]
    lines = []
    for row in rows:
        parts = []
        for i, cell in enumerate(row):
            value = _clean(cell)
            if not value:
                continue
            name = names[i] if i < len(names) else ""
            parts.append(f"{name}: {value}" if name and name != value else value)
        if parts:
            lines.append(" | ".join(parts))
    return lines


def grid_blocks(rows: list[list[str]], page: int | None = None) -> list[Block]:
    """A table given as rows only (.docx, .pptx): the first row is the header, unless it is the only
    row (often a layout box: its cells on one line, no header)."""
    if len(rows) <= 1:
        return table_blocks([], rows, page=page)
    return table_blocks(rows[0], rows[1:], page=page)


def table_blocks(header: list[str], rows: list[list[str]], page: int | None = None, start: int = 0,
                 caption: str = "") -> list[Block]:
    """A table's Blocks: its caption (if any), then one text Block per row (see ``row_lines``)."""
    blocks = [Block(_clean(caption), page, "text", 0, start)] if caption.strip() else []
    blocks += [Block(line, page, "text", 0, start) for line in row_lines(header, rows)]
    return blocks
