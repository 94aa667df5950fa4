"""reStructuredText: section titles by their adornment (underline, or overline + underline); the
level of a style is the order in which it first appears. A literal block (the indented lines after a
paragraph ending "::", or after a ``code-block``/``code``/``sourcecode`` directive) becomes a fenced code
block, dedented, as in Markdown: the model reads it as code, and the sentences around it are not run together
with it (``rag.text.sentence_spans``). The rest is paragraphs."""
from __future__ import annotations

import re
import textwrap

from rag.ingest.loaders.base import Block, fenced, paragraphs

_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")
_CODE_DIRECTIVE = re.compile(r"\.\. (?:code-block|code|sourcecode)::[ \t]*(\S*)[ \t]*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _lead_in(line: str) -> str:
    """A line ending "::" as rst shows it: "Example::" -> "Example:", "Then build it ::" -> "Then build it", "::" -> ""."""
    body = line.rstrip()[:-2]
    if not body.strip():
        return ""
    return body.rstrip() if body[-1].isspace() else body + ":"


def _literal(lines: list[str], i: int, directive: bool) -> tuple[int, int]:
    """(first line, end) of the literal block introduced by line ``i``: the lines indented deeper than it (and
    the blank lines between them; a directive's option lines, ":linenos:", are not code); (end, end) if none."""
    base, j = _indent(lines[i]), i + 1
    while directive and j < len(lines) and lines[j].strip().startswith(":") and _indent(lines[j]) > base:
        j += 1
    first = j
    while first < len(lines) and not lines[first].strip():
        first += 1
    end = first
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > first and not lines[end - 1].strip():
        end -= 1
    return (first, end) if end > first else (end, end)


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
        # overline + title + underline, each line as long as the title (a ``` fence around a line of text is no title)
        if over and i + 2 < len(lines) and lines[i + 1].strip() and _RST_ADORN.match(lines[i + 2]) \
                and lines[i + 2].strip()[0] == line.strip()[0] \
                and min(len(line.strip()), len(lines[i + 2].strip())) >= len(lines[i + 1].strip()) - 1:
            heading("o" + line.strip()[0], lines[i + 1].strip(), i + 1)
            i += 3
            continue
        under = _RST_ADORN.match(nxt)
        if line.strip() and not line[0].isspace() and under and len(nxt.strip()) >= len(line.strip()) - 1 \
                and not _RST_ADORN.match(line):
            heading(nxt.strip()[0], line.strip(), i)
            i += 2
            continue
        directive = _CODE_DIRECTIVE.match(line.strip())
        if line.strip() and (directive or line.rstrip().endswith("::")):
            first, end = _literal(lines, i, bool(directive))
            if end > first:
                lead = "" if directive else _lead_in(line)
                if lead:
                    if not buf:
                        buf_start = pos_of[i]
                    buf.append(lead)
                flush()
                code = textwrap.dedent("\n".join(lines[first:end]))
                blocks.append(Block(fenced(code, directive.group(1) if directive else ""), None, "text", 0,
                                    pos_of[first]))
                i = end
                continue
        if not buf:
            buf_start = pos_of[i]
        buf.append(line)
        i += 1
    flush()
    return blocks
