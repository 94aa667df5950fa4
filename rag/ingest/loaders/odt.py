"""OpenDocument text (.odt, LibreOffice Writer): the body's headings, paragraphs, list items and tables
in document order, read from the package's ``content.xml`` with the standard zip reader and lxml (no
entity expansion, no network), within the unzip caps (``office.open_zip``, ``office.Reader``). ``text:h``
elements (and paragraphs styled "Title", as level 1) are heading Blocks; consecutive paragraphs in a style for
code (LibreOffice's "Preformatted Text", ...: ``base.code_style``) are one fenced code block with their lines
and indentation; each table row becomes one text Block keeping its column names
(``tables.grid_blocks``, the first row is the header); footnote and endnote bodies follow the paragraph
that cites them. Like .docx, an .odt has no reliable pages (``pages`` = 0); ``start`` is the block's
character offset in ``Document.text``. A password-protected document (its manifest names encryption
data) is an ``EncryptedFile``."""
from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders import office
from rag.ingest.loaders.base import Block, CodeLines, Document, code_style, first_heading, joined_offsets
from rag.ingest.loaders.errors import EmptyFile, EncryptedFile, LoaderError
from rag.ingest.loaders.tables import grid_blocks

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
DC = "http://purl.org/dc/elements/1.1/"
MIMETYPE = b"application/vnd.oasis.opendocument.text"
MAX_REPEAT = 64  # a row or cell "repeated" to the sheet's end is not copied a million times
KIND = "OpenDocument text (.odt)"


class PasswordProtected(EncryptedFile):
    reason = "the document is password protected; save it without a password and add it again"


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def load_odt(path: Path, data: bytes) -> Document:
    root, title = _open(path, data)
    body = root.find(f"{_q(OFFICE, 'body')}/{_q(OFFICE, 'text')}")
    if body is None:
        raise office.invalid(path, KIND, "content.xml has no text body")
    styles = _Styles(root)
    blocks: list[Block] = []
    code = CodeLines(blocks)
    _walk(body, blocks, styles, code)
    code.end()
    if not any(b.kind == "text" for b in blocks):
        raise EmptyFile(path, "only headings" if blocks else "")
    joined_offsets(blocks)
    return Document(str(path), "odt", blocks, title=first_heading(blocks) or title or path.stem)


def _open(path: Path, data: bytes):
    """(the parsed content.xml root, the title from meta.xml or "") or a LoaderError saying why not."""
    from lxml import etree

    legacy = "an old binary Word file or a password-protected package; save it as .odt"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    with office.open_zip(path, data, KIND, legacy) as z:  # within the unzip caps, parts read within them too
        try:
            return _parts(path, office.Reader(path, z), parser)
        except LoaderError:
            raise
        except Exception as exc:  # zipfile and lxml raise many kinds on damaged packages
            raise office.invalid(path, KIND, f"{type(exc).__name__}: {exc}") from None


def _parts(path: Path, reader: office.Reader, parser):
    """(content.xml's root, meta.xml's title or "") read through ``reader`` (mimetype and manifest checked)."""
    from lxml import etree

    names = set(reader.z.namelist())
    if "mimetype" in names and not (kind := reader.read("mimetype")).strip().startswith(MIMETYPE):
        raise office.invalid(path, KIND, f"another OpenDocument type ({kind[:60].decode('ascii', 'replace')})")
    if "META-INF/manifest.xml" in names:
        manifest = etree.fromstring(reader.read("META-INF/manifest.xml"), parser)
        if manifest.find(f".//{_q(MANIFEST, 'encryption-data')}") is not None:
            raise PasswordProtected(path)
    if "content.xml" not in names:
        raise office.invalid(path, KIND, "no content.xml in the package")
    root = etree.fromstring(reader.read("content.xml"), parser)
    title = ""
    if "meta.xml" in names:
        node = etree.fromstring(reader.read("meta.xml"), parser).find(f".//{_q(DC, 'title')}")
        title = " ".join((node.text or "").split()) if node is not None else ""
    return root, title


def _display(name: str) -> str:
    """An OpenDocument style name as shown ("Preformatted_20_Text" -> "Preformatted Text")."""
    return re.sub(r"_([0-9a-fA-F]{2})_", lambda m: chr(int(m.group(1), 16)), name)


class _Styles:
    """Which paragraph style names are "Title" and which are for code: the style itself, or the automatic
    style (content.xml's "P3") that derives from it."""

    def __init__(self, root):
        parents = {st.get(_q(STYLE, "name")): st.get(_q(STYLE, "parent-style-name")) or ""
                   for st in root.iter(_q(STYLE, "style"))}
        self.titles = {"Title"} | {name for name, parent in parents.items() if parent == "Title"}
        self.codes = {name for name, parent in parents.items() if code_style(_display(parent))}

    def code(self, name: str | None) -> bool:
        return bool(name) and (name in self.codes or code_style(_display(name)))


def _walk(parent, blocks: list[Block], styles: _Styles, code: CodeLines) -> None:
    for child in parent:
        tag = child.tag
        style = child.get(_q(TEXT, "style-name"))
        if tag == _q(TEXT, "p") and styles.code(style):
            code.add(_inline(child, strip=False)[0])
            continue
        code.end()
        if tag == _q(TEXT, "h"):
            text, notes = _inline(child)
            if text:
                level = int(child.get(_q(TEXT, "outline-level"), "1") or 1)
                blocks.append(Block(text, None, "heading", max(1, min(level, 9))))
            blocks.extend(notes)
        elif tag == _q(TEXT, "p"):
            text, notes = _inline(child)
            if text:
                title = style in styles.titles
                blocks.append(Block(text, None, "heading", 1) if title else Block(text, None, "text"))
            blocks.extend(notes)
        elif tag == _q(TABLE, "table"):
            blocks.extend(grid_blocks(_table_rows(child)))
        elif tag in (_q(TEXT, "list"), _q(TEXT, "list-item"), _q(TEXT, "list-header"), _q(TEXT, "section"),
                     _q(TABLE, "table-header-rows"), _q(TEXT, "index-body")):
            _walk(child, blocks, styles, code)
        # text:sequence-decls, text:table-of-content's generated title, drawings: not text of the body


def _inline(el, strip: bool = True) -> tuple[str, list[Block]]:
    """The paragraph's text (spaces and tabs as written, line breaks kept; ``strip``: without the spaces
    around it) and its notes' paragraphs."""
    parts: list[str] = []
    notes: list[Block] = []

    def add(node):
        if node.text:
            parts.append(node.text)
        for c in node:
            tag = c.tag
            if tag == _q(TEXT, "s"):
                parts.append(" " * min(int(c.get(_q(TEXT, "c"), "1") or 1), MAX_REPEAT))
            elif tag == _q(TEXT, "tab"):
                parts.append("\t")
            elif tag == _q(TEXT, "line-break"):
                parts.append("\n")
            elif tag == _q(TEXT, "note"):
                body = c.find(_q(TEXT, "note-body"))
                if body is not None:
                    for p in body.iter(_q(TEXT, "p")):
                        text, _ = _inline(p)
                        if text:
                            notes.append(Block(text, None, "text"))
            elif tag not in (_q(OFFICE, "annotation"), _q(TEXT, "bookmark-start"), _q(TEXT, "bookmark-end")):
                add(c)  # spans, links, fields: their text
            if c.tail:
                parts.append(c.tail)

    add(el)
    text = "".join(parts)
    return text.strip() if strip else text.rstrip(), notes


def _table_rows(table) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.iter(_q(TABLE, "table-row")):
        if _enclosing_table(row) is not table:
            continue  # a nested table's rows are read with that table's cell text
        cells: list[str] = []
        for cell in row:
            if cell.tag == _q(TABLE, "covered-table-cell"):
                continue  # the part of a merged cell: its text is in the cell that spans it
            if cell.tag != _q(TABLE, "table-cell"):
                continue
            text = "\n".join(t for t in (_inline(p)[0] for p in cell.iter(_q(TEXT, "p"), _q(TEXT, "h"))) if t)
            repeat = min(int(cell.get(_q(TABLE, "number-columns-repeated"), "1") or 1), MAX_REPEAT)
            cells.extend([text] * (repeat if text else 1))
        while cells and not cells[-1]:
            cells.pop()
        repeat = min(int(row.get(_q(TABLE, "number-rows-repeated"), "1") or 1), MAX_REPEAT)
        rows.extend([cells] * (repeat if any(cells) else 1))
    return rows


def _enclosing_table(el):
    p = el.getparent()
    while p is not None and p.tag != _q(TABLE, "table"):
        p = p.getparent()
    return p
