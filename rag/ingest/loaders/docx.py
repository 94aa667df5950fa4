"""Word (.docx, python-docx): the body's paragraphs and tables in document order. Paragraphs styled
"Heading 1".."Heading 9" (and "Title", as level 1) are heading Blocks, so passages carry them like PDF
outlines and Markdown headings; consecutive paragraphs in a style for code ("Preformatted Text", "HTML
Preformatted", "Code", ...: ``base.code_style``, or one based on it) are one fenced code block with their lines
and indentation, as HTML ``<pre>`` is; each table row becomes one text Block keeping its column names
(``tables.grid_blocks``, the first row is the header). A .docx has no reliable pages (``pages`` = 0);
``start`` is the block's character offset in ``Document.text``."""
from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders import office
from rag.ingest.loaders.base import Block, CodeLines, Document, code_style, first_heading, joined_offsets
from rag.ingest.loaders.errors import EmptyFile
from rag.ingest.loaders.tables import grid_blocks

_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.I)


def load_docx(path: Path, data: bytes) -> Document:
    document = _open(path, data)
    blocks: list[Block] = []
    styles = ParagraphStyles(document)
    code = CodeLines(blocks)
    for kind, item in _body_items(document):
        if kind == "p" and styles.code(item):
            code.add(item.text)
            continue
        code.end()
        if kind == "p":
            block = _paragraph_block(item, styles)
            if block is not None:
                blocks.append(block)
        else:
            blocks.extend(_table_blocks(item))
    code.end()
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


def _paragraph_block(paragraph, styles: "ParagraphStyles") -> Block | None:
    text = paragraph.text.strip()
    if not text:
        return None
    level = styles.level(paragraph)
    if level:
        return Block(" ".join(text.split()), None, "heading", level)
    return Block(text, None, "text")


class ParagraphStyles:
    """The heading level of each paragraph style, and whether it is one for code (its own name or that of a
    style it is based on), read once per document. (python-docx's ``paragraph.style`` searches the styles part
    for every paragraph without a style of its own, ~2 ms each: measured, 14,000 paragraphs took 30 s.) A
    paragraph names its style by id; an unknown id or none is the default paragraph style, as in Word."""

    def __init__(self, document):
        from docx.enum.style import WD_STYLE_TYPE

        self.levels: dict[str, int] = {}
        self.codes: set[str] = set()
        self.default = 0
        try:
            for style in document.styles:
                if style.type == WD_STYLE_TYPE.PARAGRAPH:
                    self.levels[style.style_id] = _level(style.name)
                    if _based_on_code(style):
                        self.codes.add(style.style_id)
            default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
            self.default = _level(default.name) if default is not None else 0
        except Exception:  # a broken styles part: plain paragraphs
            pass

    @staticmethod
    def _id(paragraph) -> str | None:
        try:
            return paragraph._p.style
        except Exception:  # a broken style reference: a plain paragraph
            return None

    def level(self, paragraph) -> int:
        style_id = self._id(paragraph)
        return self.levels.get(style_id, self.default) if style_id else self.default

    def code(self, paragraph) -> bool:
        return self._id(paragraph) in self.codes


def _based_on_code(style, depth: int = 8) -> bool:
    """``style`` or one it is based on (a few steps up: a loop of base styles ends) is a style for code."""
    while style is not None and depth:
        if code_style(style.name):
            return True
        style, depth = style.base_style, depth - 1
    return False


def _level(name: str | None) -> int:
    """A style name's heading level: "Title" 1, "Heading 1".."Heading 9", else 0."""
    name = (name or "").strip()
    if name.lower() == "title":
        return 1
    m = _HEADING_STYLE.match(name)
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
