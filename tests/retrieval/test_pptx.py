"""PowerPoint decks (.pptx): real files written with python-pptx, loaded by the real loader, indexed by the
real Library with the real embedding model. Slides are pages; titles, reading order, tables, grouped shapes,
speaker notes; every bad-file case is a typed error naming the file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pptx import Presentation
from pptx.util import Inches, Pt

from rag.ingest import loaders
from rag.ingest.loaders import CorruptFile, EmptyFile

STATIONS = [("Skerryvore", "18 nautical miles", "Agnes Tulloch"), ("Bell Rock", "16 nautical miles", "Hamish Ure"),
            ("Muckle Flugga", "22 nautical miles", "Isobel Rendall")]


def _box(slide, text: str, top: float, left: float = 1.0):
    box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(6), Inches(0.8))
    box.text_frame.text = text
    return box


def write_deck(path: Path) -> Path:
    deck = Presentation()
    title = deck.slides.add_slide(deck.slide_layouts[0])  # Title Slide
    title.shapes.title.text = "Lighthouse Keeping"
    title.placeholders[1].text = "A field guide for relief keepers"

    lamp = deck.slides.add_slide(deck.slide_layouts[1])  # Title and Content
    lamp.shapes.title.text = "Lamp maintenance"
    body = lamp.placeholders[1].text_frame
    body.text = "Clean the Fresnel lens every Tuesday with a dry chamois cloth."
    body.add_paragraph().text = "Trim the wick before sunset and log the oil level in the station book."

    table_slide = deck.slides.add_slide(deck.slide_layouts[5])  # Title Only
    table_slide.shapes.title.text = "Stations"
    shape = table_slide.shapes.add_table(len(STATIONS) + 1, 3, Inches(1), Inches(2), Inches(8), Inches(2))
    for col, name in enumerate(("Station", "Range", "Keeper")):
        shape.table.cell(0, col).text = name
    for row, values in enumerate(STATIONS, start=1):
        for col, value in enumerate(values):
            shape.table.cell(row, col).text = value

    loose = deck.slides.add_slide(deck.slide_layouts[6])  # Blank: no title
    _box(loose, "Third: ring the bell twice when the fog lifts.", top=5.0)  # added first, read last
    _box(loose, "First: wind the clockwork of the fog signal every four hours.", top=1.0)
    group = loose.shapes.add_group_shape()
    inner = group.shapes.add_textbox(Inches(1), Inches(3), Inches(6), Inches(0.8))
    inner.text_frame.text = "Second: the foghorn is tested at noon on Sundays."
    inner.text_frame.paragraphs[0].runs[0].font.size = Pt(18)
    loose.notes_slide.notes_text_frame.text = "Tell new keepers that the cat is called Fresnel too."
    deck.save(str(path))
    return path


def test_kind_and_supported():
    assert loaders.kind_for(Path("deck.pptx")) == "pptx" and loaders.kind_for(Path("Talk.PPTX")) == "pptx"
    assert ".pptx" in loaders.SUPPORTED_EXTS and not loaders.is_supported(Path("old.ppt"))


def test_slides_are_pages_with_titles_tables_groups_and_notes(tmp_path):
    doc = loaders.load(write_deck(tmp_path / "keepers.pptx"))
    assert doc.kind == "pptx" and doc.pages == 4 and doc.title == "Lighthouse Keeping"
    heads = [(b.page, b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert heads == [(1, 1, "Lighthouse Keeping"), (2, 1, "Lamp maintenance"), (3, 1, "Stations"), (4, 1, "Slide 4")]
    texts = [(b.page, b.text) for b in doc.blocks if b.kind == "text"]
    assert (1, "A field guide for relief keepers") in texts
    assert (2, "Clean the Fresnel lens every Tuesday with a dry chamois cloth.\n"
               "Trim the wick before sunset and log the oil level in the station book.") in texts
    rows = [t for p, t in texts if p == 3]
    assert rows == [f"Station: {s} | Range: {r} | Keeper: {k}" for s, r, k in STATIONS]
    slide4 = [t for p, t in texts if p == 4]
    assert slide4 == ["First: wind the clockwork of the fog signal every four hours.",
                      "Second: the foghorn is tested at noon on Sundays.",
                      "Third: ring the bell twice when the fog lifts.",
                      "Tell new keepers that the cat is called Fresnel too."]
    for page in range(1, 5):  # offsets are positions in the slide's text
        blocks = [b for b in doc.blocks if b.page == page]
        assert [b.start for b in blocks] == sorted(b.start for b in blocks) and blocks[0].start == 0


def test_a_deck_is_searchable_and_cites_slides(library, tmp_path):
    deck = write_deck(tmp_path / "keepers.pptx")
    report = library.ingest([deck])
    assert not report.failed and report.added == [str(deck)]
    for question, slide, words in [("How often is the Fresnel lens cleaned?", 2, "every Tuesday"),
                                   ("Which keeper works at the Muckle Flugga station?", 3, "Isobel Rendall"),
                                   ("When is the foghorn tested?", 4, "noon on Sundays")]:
        hit = library.search(question, k=1)[0]
        assert hit.chunk.page == slide and words in hit.chunk.text, (question, hit.chunk.citation(), hit.chunk.text)
        assert hit.chunk.citation() == f"keepers.pptx, p. {slide}" and not hit.chunk.ocr
    lamp = library.search("trim the wick before sunset", k=1)[0]
    assert lamp.chunk.heading == "Lamp maintenance"
    fog = library.search("When is the foghorn tested?", k=1)[0]  # an untitled slide: its own passage
    assert fog.chunk.heading == "Slide 4" and "Stations" not in fog.chunk.text and "Skerryvore" not in fog.chunk.text


@pytest.mark.parametrize("case,error", [("random", CorruptFile), ("old-ppt", CorruptFile), ("truncated", CorruptFile),
                                        ("docx-renamed", CorruptFile), ("no-text", EmptyFile)])
def test_bad_pptx_raise_typed_errors_naming_the_file(tmp_path, case, error):
    if case == "random":
        p = tmp_path / "random.pptx"
        p.write_bytes(os.urandom(4096))
    elif case == "old-ppt":
        p = tmp_path / "legacy.pptx"
        p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(2048))
    elif case == "truncated":
        good = write_deck(tmp_path / "whole.pptx").read_bytes()
        p = tmp_path / "truncated.pptx"
        p.write_bytes(good[: len(good) // 2])
    elif case == "docx-renamed":
        import docx

        p = tmp_path / "letter.pptx"
        d = docx.Document()
        d.add_paragraph("A Word document with the wrong extension.")
        d.save(str(p))
    else:
        deck = Presentation()
        deck.slides.add_slide(deck.slide_layouts[6])  # a blank slide, nothing on it
        p = tmp_path / "blank.pptx"
        deck.save(str(p))
    with pytest.raises(error) as info:
        loaders.load(p)
    assert type(info.value) is error and str(info.value).startswith(p.name + ": ")
    if error is CorruptFile:
        assert "not a valid PowerPoint presentation (.pptx)" in str(info.value)
    if case == "old-ppt":
        assert ".ppt" in str(info.value) and "password" in str(info.value)
