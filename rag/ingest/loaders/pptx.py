"""PowerPoint (.pptx, python-pptx): each slide is a page (its number is the page a passage cites). The
slide's title is a heading (level 1; "Slide N" for a slide without one, so a passage never runs from one
slide into the next), and its passages carry it; then the text of its other shapes in
reading order (top to bottom, then left to right; grouped shapes opened), each table row as one line
keeping its column names (``tables.grid_blocks``, the first row is the header), and the speaker notes.
``start`` is the block's character offset in the slide's text."""
from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders import office
from rag.ingest.loaders.base import Block, Document, first_heading, joined_offsets
from rag.ingest.loaders.errors import EmptyFile
from rag.ingest.loaders.tables import grid_blocks


def load_pptx(path: Path, data: bytes) -> Document:
    deck = _open(path, data)
    blocks: list[Block] = []
    n = 0
    for n, slide in enumerate(deck.slides, start=1):
        blocks.extend(_slide_blocks(slide, n))
    if not any(b.kind == "text" for b in blocks):
        titled = any(not b.text.startswith("Slide ") for b in blocks)
        raise EmptyFile(path, "only slide titles" if titled else f"{n} slide(s) without text")
    return Document(str(path), "pptx", blocks, title=first_heading(blocks) or office.core_title(deck) or path.stem, pages=n)


def _open(path: Path, data: bytes):
    return office.open_package(path, data, module="pptx", package="python-pptx", factory="Presentation",
                               kind="PowerPoint presentation (.pptx)",
                               legacy="an old PowerPoint 97-2003 file (.ppt) or a password-protected presentation; "
                                      "save it as .pptx without a password")


def _slide_blocks(slide, number: int) -> list[Block]:
    blocks: list[Block] = []
    title_shape = _title_shape(slide)
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    blocks.append(Block(title or f"Slide {number}", number, "heading", 1))
    for shape in _in_reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        blocks.extend(_shape_blocks(shape, number))
    notes = _notes(slide)
    if notes:
        blocks.append(Block(notes, number, "text"))
    return joined_offsets(blocks)  # offsets in the slide's text


def _title_shape(slide):
    try:
        shape = slide.shapes.title
    except Exception:
        return None
    return shape if shape is not None and shape.has_text_frame else None


def _in_reading_order(shapes) -> list:
    def key(shape):
        top, left = getattr(shape, "top", None), getattr(shape, "left", None)
        return (top if top is not None else 0, left if left is not None else 0)

    try:
        return sorted(shapes, key=key)
    except Exception:  # a shape without a readable position: document order
        return list(shapes)


def _shape_blocks(shape, number: int) -> list[Block]:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        return [b for inner in _in_reading_order(shape.shapes) for b in _shape_blocks(inner, number)]
    if getattr(shape, "has_table", False):
        return grid_blocks([[cell.text for cell in row.cells] for row in shape.table.rows], page=number)
    if getattr(shape, "has_text_frame", False):
        lines = [p.text.strip() for p in shape.text_frame.paragraphs]
        text = "\n".join(ln for ln in lines if ln)
        return [Block(text, number, "text")] if text else []
    return []


def _notes(slide) -> str:
    try:
        if not slide.has_notes_slide:
            return ""
        frame = slide.notes_slide.notes_text_frame
        return "\n".join(ln.strip() for ln in (frame.text if frame is not None else "").splitlines() if ln.strip())
    except Exception:
        return ""
