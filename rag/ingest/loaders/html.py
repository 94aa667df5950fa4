"""HTML: the visible text (no scripts, styles, head), ``<h1>``-``<h6>`` as headings, block elements
as paragraphs, and the ``<title>``. Malformed markup falls back to the text with tags stripped."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from rag.ingest.loaders.base import Block, paragraphs

_HEADING_TAG = re.compile(r"h[1-6]")
_LINE_TAGS = ("br", "li", "tr", "dt")  # a new line, not a new block


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

    def flush(self):
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.buf))
        text = re.sub(r" ?\n ?", "\n", text).strip()
        self.buf = []
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
        if _HEADING_TAG.fullmatch(tag):
            self.flush()
            self.heading = int(tag[1])
        elif tag in self.BLOCK:
            if tag in _LINE_TAGS:
                self.buf.append("\n")
            else:
                self.flush()

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if _HEADING_TAG.fullmatch(tag):
            self.flush()
            self.heading = None
        elif tag in self.BLOCK and tag not in _LINE_TAGS:
            self.flush()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if not self.skip:
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
    parser.flush()
    pos = 0
    for b in parser.blocks:
        b.start = pos
        pos += len(b.text) + 1
    return parser.blocks, " ".join(parser.title.split())
