"""Markdown: headings from markdown-it-py's token stream (CommonMark: ATX and setext headings;
nothing inside code fences, indented code, HTML blocks, quotes or lists counts as a heading).

The text between two headings is kept as it stands in the file, cut into paragraphs at blank
lines, so every block's ``start`` is its offset in the file text (the chunker's offsets and
sentence rules read the source, code fences and list markers included). Thematic breaks
(``---``) hold no text and are left out.
"""
from __future__ import annotations

from markdown_it import MarkdownIt

from rag.ingest.loaders.base import Block, paragraphs

_PARSER = MarkdownIt("commonmark")  # parse() keeps its state per call: one parser serves all threads


def markdown_blocks(text: str) -> list[Block]:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def run(first: int, end: int) -> list[Block]:
        """Paragraphs of source lines ``first`` to ``end`` (exclusive)."""
        return paragraphs("\n".join(lines[first:end]), starts[first]) if end > first else []

    blocks: list[Block] = []
    after = 0  # first source line after the last heading (or break) taken out of the text
    tokens = _PARSER.parse(text)
    for i, tok in enumerate(tokens):
        if tok.level != 0 or not tok.map or tok.type not in ("heading_open", "hr"):
            continue
        title = ""
        if tok.type == "heading_open":
            title = " ".join(part.strip() for part in tokens[i + 1].content.split("\n"))
            if not title:  # a lone "#": text, not an empty section
                continue
        blocks.extend(run(after, tok.map[0]))
        if title:
            blocks.append(Block(title, None, "heading", int(tok.tag[1]), starts[tok.map[0]]))
        after = tok.map[1]
    blocks.extend(run(after, len(lines)))
    return blocks
