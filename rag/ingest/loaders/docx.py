"""Word (.docx, python-docx): the body's paragraphs and tables in document order. Paragraphs styled
"Heading 1".."Heading 9" (and "Title", as level 1) are heading Blocks, so passages carry them like PDF
outlines and Markdown headings; each table row becomes one text Block keeping its column names
(``tables.grid_blocks``, the first row is the header). A .docx has no reliable pages (``pages`` = 0);
``start`` is the block's character offset in ``Document.text``."""
from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders import office
from rag.ingest.loaders.base import Block, Document, first_heading, joined_offsets
from rag.ingest.loaders.errors import EmptyFile
from rag.ingest.loaders.tables import grid_blocks

_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.I)


def load_docx(path: Path, data: bytes) -> Document:
    document = _open(path, data)
    blocks: list[Block] = []
    for kind, item in _body_items(document):
        if kind == "p":
            block = _paragraph_block(item)
            if block is not None:
                blocks.append(block)
        else:
            blocks.extend(_table_blocks(item))
    if not any(b.kind == "text" for b in blocks):
        raise EmptyFile(path, "only headings" if blocks else "")
    joined_offsets(blocks)  # offsets in Document.text
    return Document(str(path), "docx", blocks, title=first_heading(blocks) or office.core_title(document) or path.stem)


def _open(path: Path, data: bytes):
    return office.open_package(path, data, module="docx", package="python-docx", factory="Document",
                               kind="Word document (.docx)",
                               legacy="an old Word 97-2003 file (.doc) or a password-protected document; "
                                      "save it as .docx without a password")


def _body_items(document):
    """("p", Paragraph) and ("tbl", Table) of the body in document order (content controls opened)."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    body = document.element.body

    def walk(parent):
        for child in parent.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                yield "p", Paragraph(child, document._body)
            elif tag == "tbl":
                yield "tbl", Table(child, document._body)
            elif tag in ("sdt", "sdtContent", "customXml"):
                yield from walk(child)

    yield from walk(body)


def _paragraph_block(paragraph) -> Block | None:
    text = paragraph.text.strip()
    if not text:
        return None
    level = _heading_level(paragraph)
    if level:
        return Block(" ".join(text.split()), None, "heading", level)
    return Block(text, None, "text")


def _heading_level(paragraph) -> int:
    try:
        style = paragraph.style
        name = (style.name or "") if style is not None else ""
    except Exception:  # a broken style reference: a plain paragraph
        return 0
    if name.strip().lower() == "title":
        return 1
    m = _HEADING_STYLE.match(name.strip())
    return int(m.group(1)) if m else 0


def _table_blocks(table) -> list[Block]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if cell._tc in seen:  # a merged cell is listed once per grid column it spans
                continue
            seen.add(cell._tc)
            cells.append(cell.text)
        rows.append(cells)
    return grid_blocks(rows)
