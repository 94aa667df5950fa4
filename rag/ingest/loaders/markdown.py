"""Markdown: headings from markdown-it-py's token stream (CommonMark: ATX and setext headings;
nothing inside code fences, indented code, HTML blocks, quotes or lists counts as a heading).

The text between two headings is kept as it stands in the file, cut into paragraphs at blank
lines, so every block's ``start`` is its offset in the file text (the chunker's offsets and
sentence rules read the source, code fences and list markers included). Thematic breaks
(``---``) hold no text and are left out.

A code block (top level) is one Block however many blank lines it holds, fenced as in the file; an
indented one is given fences (and dedented): the sentence rules keep a fenced block apart from the prose
(``rag.text.sentence_spans``), and a block cut at its blank lines left a chunk starting inside code.

GFM pipe tables (top level) are the other exception: each becomes one Block per row that keeps its
column names (``tables.table_blocks``), all starting at the table's offset, with inline markup in
the cells reduced to its text.
"""
from __future__ import annotations

import textwrap

from markdown_it import MarkdownIt

from markdown_it.token import Token

from rag.ingest.loaders.base import Block, fenced, paragraphs
from rag.ingest.loaders.tables import table_blocks

_PARSER = MarkdownIt("commonmark").enable("table")  # parse() keeps its state per call: one parser serves all threads


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
        if tok.level != 0 or not tok.map or tok.type not in ("heading_open", "hr", "table_open", "fence", "code_block"):
            continue
        if tok.type in ("fence", "code_block"):
            blocks.extend(run(after, tok.map[0]))
            source = "\n".join(lines[tok.map[0]:tok.map[1]]).rstrip()
            if tok.type == "code_block":
                source = fenced(textwrap.dedent(source))
            elif not tok.markup.startswith("`"):  # ~~~: the sentence rules know backtick fences only
                source = fenced(tok.content, tok.info)
            if source.strip("`~ \n"):
                blocks.append(Block(source, None, "text", 0, starts[tok.map[0]]))
            after = tok.map[1]
            continue
        if tok.type == "table_open":
            blocks.extend(run(after, tok.map[0]))
            header, rows = _table_cells(tokens, i)
            blocks.extend(table_blocks(header, rows, start=starts[tok.map[0]]))
            after = tok.map[1]
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


def _inline_text(tok: Token) -> str:
    """The text of an inline token: markup dropped, code spans and image alt text kept."""
    parts = []
    for child in tok.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child))
    return " ".join("".join(parts).split())


def _table_cells(tokens: list[Token], i: int) -> tuple[list[str], list[list[str]]]:
    """(header, body rows) of the table whose ``table_open`` is ``tokens[i]``."""
    header: list[str] = []
    rows: list[list[str]] = []
    row: list[str] | None = None
    in_head = False
    for tok in tokens[i + 1:]:
        if tok.type == "table_close":
            break
        if tok.type == "thead_open":
            in_head = True
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and row is not None:
            if in_head and not header:
                header = row
            else:
                rows.append(row)
            row = None
        elif tok.type == "inline" and row is not None:
            row.append(_inline_text(tok))
    return header, rows
