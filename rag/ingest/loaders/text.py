"""Text decoding for every text format, and plain text (paragraphs separated by blank lines, underlined titles)."""
from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders.base import Block
from rag.ingest.loaders.errors import BinaryFile, UndecodableText
from rag.ingest.loaders.rst import rst_blocks

_C1 = re.compile("[\x80-\x9f]")
_CTRL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 (BOMs honoured), then cp1252, then Latin-1; binary or garbage raises."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UndecodableText(path, "invalid UTF-16") from None
    head = data[:8192]
    if b"\x00" in head:
        raise BinaryFile(path, "contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
        for enc in ("cp1252", "latin-1"):
            try:
                candidate = data.decode(enc)
            except UnicodeDecodeError:
                continue
            if len(_C1.findall(candidate)) <= max(2, len(candidate) // 200):
                text = candidate
                break
        if text is None:
            raise UndecodableText(path, "not UTF-8, cp1252 or Latin-1 text") from None
    sample = text[:20000]
    if sample and len(_CTRL.findall(sample)) > max(3, len(sample) // 100):
        raise BinaryFile(path, "too many control characters")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def plain_blocks(text: str) -> list[Block]:
    """Paragraphs separated by blank lines, read by reStructuredText's rules, which plain-text notes and release
    notes follow: a title underlined (or over- and underlined) with a line of "=", "-", "~" ... is a heading
    (quoted, "Git 2.20 Release Notes ====== Backward Compatibility Notes ------" read as one sentence), and the
    indented lines after a line ending "::" are a code block."""
    return rst_blocks(text)
