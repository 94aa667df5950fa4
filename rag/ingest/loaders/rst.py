"""reStructuredText: section titles by their adornment (underline, or overline + underline); the
level of a style is the order in which it first appears. The rest is paragraphs."""
from __future__ import annotations

import re

from rag.ingest.loaders.base import Block, paragraphs

_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")


def rst_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.split("\n")
    levels: list[str] = []  # adornment styles in order of first appearance
    buf: list[str] = []
    buf_start = 0
    pos_of = []
    pos = 0
    for line in lines:
        pos_of.append(pos)
        pos += len(line) + 1

    def flush():
        nonlocal buf
        if buf:
            blocks.extend(paragraphs("\n".join(buf), buf_start))
            buf = []

    def heading(style: str, title: str, line_no: int) -> None:
        flush()
        if style not in levels:
            levels.append(style)
        blocks.append(Block(title, None, "heading", levels.index(style) + 1, pos_of[line_no]))

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        over = _RST_ADORN.match(line)
        # overline + title + underline
        if over and i + 2 < len(lines) and lines[i + 1].strip() and _RST_ADORN.match(lines[i + 2]) \
                and lines[i + 2].strip()[0] == line.strip()[0]:
            heading("o" + line.strip()[0], lines[i + 1].strip(), i + 1)
            i += 3
            continue
        under = _RST_ADORN.match(nxt)
        if line.strip() and not line[0].isspace() and under and len(nxt.strip()) >= len(line.strip()) - 1 \
                and not _RST_ADORN.match(line):
            heading(nxt.strip()[0], line.strip(), i)
            i += 2
            continue
        if not buf:
            buf_start = pos_of[i]
        buf.append(line)
        i += 1
    flush()
    return blocks
