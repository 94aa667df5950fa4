"""HTML: the visible text (no scripts, styles, head), ``<h1>``-``<h6>`` as headings, block elements
as paragraphs, and the ``<title>``. Malformed markup falls back to the text with tags stripped.

A ``<table>`` becomes one Block per row that keeps its column names (``tables.table_blocks``): the
header is the first row of ``<thead>``, or else a first row of ``<th>`` cells only; a ``<caption>`` comes
first. Cell text has its whitespace collapsed; a table nested in a cell is just more text of that cell.
A ``<pre>`` keeps its lines and indentation and becomes a fenced code block, as in Markdown: the model
reads it as code, and the sentences around it are not run together with it (``rag.text.sentence_spans``)."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from rag.ingest.loaders.base import Block, fenced, joined_offsets, paragraphs
from rag.ingest.loaders.tables import table_blocks

_HEADING_TAG = re.compile(r"h[1-6]")
_LINE_TAGS = ("br", "li", "tr", "dt")  # a new line, not a new block


class _Table:
    """The cells of one ``<table>`` being read."""

    def __init__(self):
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.caption: list[str] = []
        self.in_caption = False
        self.in_head = False
        self.row: list[str] | None = None
        self.row_in_head = False
        self.row_all_th = True
        self.cell: list[str] | None = None
        self.span = 1
        self.loose: list[str] = []  # text outside any cell or caption
        self.nested = 0  # depth of tables inside a cell

    def text(self, data: str):
        if self.in_caption:
            self.caption.append(data)
        elif self.cell is not None:
            self.cell.append(data)
        else:
            self.loose.append(data)

    def end_cell(self):
        if self.cell is not None:
            if self.row is None:
                self.start_row()
            self.row.append(" ".join("".join(self.cell).split()))
            self.row.extend([""] * (self.span - 1))  # later cells stay under their own column
            self.cell = None

    def start_row(self):
        self.end_row()
        self.row, self.row_in_head, self.row_all_th = [], self.in_head, True

    def end_row(self):
        self.end_cell()
        if self.row is None:
            return
        if self.row and not self.header and not self.rows and (self.row_in_head or self.row_all_th):
            self.header = self.row
        elif any(c for c in self.row):
            self.rows.append(self.row)
        self.row = None

    def start_cell(self, tag: str, attrs):
        self.end_cell()
        if self.row is None:
            self.start_row()
        self.row_all_th = self.row_all_th and tag == "th"
        span = dict(attrs).get("colspan") or "1"
        self.span = min(int(span), 100) if span.strip().isdigit() and int(span) > 0 else 1
        self.cell = []

    def start(self, tag: str, attrs):
        if self.nested or tag == "table":
            self.nested += tag == "table"
            self.text(" ")
        elif tag == "caption":
            self.end_row()
            self.in_caption = True
        elif tag in ("thead", "tbody", "tfoot"):
            self.end_row()
            self.in_head = tag == "thead"
        elif tag == "tr":
            self.start_row()
        elif tag in ("td", "th"):
            self.start_cell(tag, attrs)
        else:
            self.text(" ")

    def end(self, tag: str):
        if self.nested:
            self.nested -= tag == "table"
            self.text(" ")
        elif tag == "caption":
            self.in_caption = False
        elif tag in ("thead", "tbody", "tfoot"):
            self.end_row()
            self.in_head = False
        elif tag == "tr":
            self.end_row()
        elif tag in ("td", "th"):
            self.end_cell()
        else:
            self.text(" ")

    def blocks(self) -> list[Block]:
        self.end_row()
        loose = " ".join("".join(self.loose).split())
        out = [Block(loose, None, "text")] if loose else []
        return out + table_blocks(self.header, self.rows, caption=" ".join("".join(self.caption).split()))


class _VisibleText(HTMLParser):
    SKIP = {"script", "style", "head", "template", "noscript", "svg", "iframe", "object"}
    BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "table", "tr", "br", "pre", "blockquote",
             "dd", "dt", "dl", "header", "footer", "nav", "main", "aside", "figure", "figcaption", "hr",
             "td", "th", "form", "fieldset"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.skip = 0
        self.heading: int | None = None
        self.title = ""
        self.in_title = False
        self.table: _Table | None = None
        self.pre = 0  # inside <pre>: its text is code

    def end_table(self):
        if self.table is not None:
            self.blocks.extend(self.table.blocks())
            self.table = None

    def flush(self):
        raw, self.buf = "".join(self.buf), []
        if self.pre:
            code = "\n".join(line.rstrip() for line in raw.replace("\r", "").split("\n"))
            if code.strip():
                self.blocks.append(Block(fenced(code), None, "text"))
            return
        text = re.sub(r"[ \t\r\f\v]+", " ", raw)
        text = re.sub(r" ?\n ?", "\n", text).strip()
        if text:
            if self.heading:
                self.blocks.append(Block(" ".join(text.split()), None, "heading", self.heading))
            else:
                self.blocks.append(Block(text, None, "text"))

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP:
            self.skip += 1
            return
        if self.table is not None and not self.skip:
            self.table.start(tag, attrs)
        elif tag == "table" and not self.skip:
            self.flush()
            self.table = _Table()
        elif _HEADING_TAG.fullmatch(tag):
            self.flush()
            self.heading = int(tag[1])
        elif tag in self.BLOCK:
            if tag in _LINE_TAGS or (self.pre and tag != "pre"):
                self.buf.append("\n")
            else:
                self.flush()
                self.pre += tag == "pre"

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.table is not None and not self.skip:
            if tag == "table" and not self.table.nested:
                self.end_table()
            else:
                self.table.end(tag)
        elif _HEADING_TAG.fullmatch(tag):
            self.flush()
            self.heading = None
        elif tag in self.BLOCK and tag not in _LINE_TAGS and (not self.pre or tag == "pre"):
            self.flush()
            self.pre = max(0, self.pre - (tag == "pre"))

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.skip:
            return
        if self.table is not None:
            self.table.text(data)
        else:
            self.buf.append(data)


def html_blocks(text: str) -> tuple[list[Block], str]:
    """(blocks, title) of an HTML page; block offsets count the blocks' text joined by newlines."""
    parser = _VisibleText()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # malformed markup: fall back to stripping tags
        stripped = html.unescape(re.sub(r"<[^>]+>", " ", text))
        return paragraphs(stripped), ""
    parser.end_table()  # a table left open at the end
    parser.flush()
    return joined_offsets(parser.blocks), " ".join(parser.title.split())
