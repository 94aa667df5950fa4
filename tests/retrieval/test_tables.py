"""Tables keep their rows: one passage line per row with its column names ("Model: X | Context: 4096"),
in Markdown and HTML, under the heading above the table, and a question about one cell finds its row."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest import loaders
from rag.ingest.loaders.tables import MAX_CELL_CHARS, row_lines, table_blocks
from rag.text import sentence_spans

HEADER = ["Model", "Context", "Licence"]
MD_ROWS = [["Quillon-7", "8192", "MIT"], ["Brastow-3", "2048", "Apache-2.0"], ["Fennick-12", "32768", "GPL-3.0"],
           ["Orvelle-1", "1024", "BSD-3-Clause"], ["Tamsin-40", "65536", "MPL-2.0"], ["Ydris-5", "4096", "ISC"]]
HTML_ROWS = [["Pellamy-9", "12288", "Zlib"], ["Corvane-2", "3072", "MIT"], ["Skelbrook-15", "24576", "Unlicense"],
             ["Hathorne-4", "6144", "Apache-2.0"], ["Wendrel-30", "49152", "LGPL-2.1"], ["Ulmaro-8", "1536", "EPL-2.0"]]


def line(row: list[str]) -> str:
    return " | ".join(f"{h}: {c}" for h, c in zip(HEADER, row))


MARKDOWN = ("# Field notes\n\nSome general notes about the lab.\n\n"
            "## Model catalogue\n\nThe models we trained this year, with their context window and licence.\n\n"
            "| Model | Context | Licence |\n|-------|--------:|:-------:|\n"
            + "".join(f"| {m} | {c} | {lic} |\n" for m, c, lic in MD_ROWS)
            + "\n## Hardware\n\nThe cluster has forty nodes.\n")

HTML = ("<html><head><title>Catalogue</title></head><body><h1>Lab page</h1><p>Welcome.</p>"
        "<h2>Model catalogue</h2><p>The models we published, with their context window and licence.</p>"
        "<table><caption>Published  models</caption><thead><tr><th>Model</th><th>Context</th><th>Licence</th></tr>"
        "</thead><tbody>"
        + "".join(f"<tr><td>{m}</td><td>\n  {c} </td><td>{lic}</td></tr>" for m, c, lic in HTML_ROWS)
        + "</tbody></table><h2>Hardware</h2><p>The cluster has forty nodes.</p></body></html>")


def heading_of(doc, index: int) -> str:
    """The nearest heading above block ``index``."""
    return next((b.text for b in reversed(doc.blocks[:index]) if b.kind == "heading"), "")


# ------------------------------------------------------------------ (a) tables.row_lines / table_blocks
def test_row_lines_keep_column_names_and_leave_out_empty_cells():
    assert row_lines(HEADER, [["Quillon-7", "8192", "MIT"]]) == ["Model: Quillon-7 | Context: 8192 | Licence: MIT"]
    assert row_lines(HEADER, [["Quillon-7", "", "MIT"]]) == ["Model: Quillon-7 | Licence: MIT"]
    assert row_lines(HEADER, [["", " ", ""], ["a  b\n c", "1"]]) == ["Model: a b c | Context: 1"]  # blank row dropped


def test_a_row_is_one_sentence_to_the_chunker_the_quote_and_the_check():
    """The colon after a column name ends no sentence: a row line is quoted (and chunked) whole, never as
    "Context:" or "MIT Model:" pieces. A pipe in prose (a shell command) is not a row."""
    rows = [line(r) for r in MD_ROWS[:3]] + ["Model: Tamsin-40 | Note: 0: the default; see below | Licence: MPL-2.0"]
    text = "The models we trained: All of them.\n" + "\n".join(rows) + "\nRun ls | grep foo: Then it prints."

    def sentences(t: str) -> list[str]:
        return [t[a:b] for a, b in sentence_spans(t)]

    assert sentences(text) == ["The models we trained:", "All of them.", *rows, "Run ls | grep foo:", "Then it prints."]
    assert sentences("\n".join(rows)) == rows
    assert sentences("Context: 8192 | 16 GB") == ["Context:", "8192 | 16 GB"]  # a cell without its name: no row


def test_row_lines_without_header_or_past_its_end():
    assert row_lines([], [["Quillon-7", "8192"]]) == ["Quillon-7 | 8192"]
    assert row_lines(["Model"], [["Quillon-7", "8192", "MIT"]]) == ["Model: Quillon-7 | 8192 | MIT"]
    assert row_lines(["Model", "Context"], [["Model", "8192"]]) == ["Model | Context: 8192"]  # name == value


def test_long_cells_are_cut():
    long = "word " * 200
    [out] = row_lines(["Notes"], [[long]])
    value = out.removeprefix("Notes: ")
    assert len(value) == MAX_CELL_CHARS and value.endswith("…") and value.startswith("word word")


def test_table_blocks_caption_then_rows_at_the_table_offset():
    blocks = table_blocks(HEADER, MD_ROWS[:2], start=120, caption="  Our   models ")
    assert [b.text for b in blocks] == ["Our models", line(MD_ROWS[0]), line(MD_ROWS[1])]
    assert {(b.kind, b.start, b.page) for b in blocks} == {("text", 120, None)}
    assert [b.text for b in table_blocks(HEADER, [["", ""]])] == []


# ------------------------------------------------------------------ (b) the loaders
@pytest.fixture
def table_files(tmp_path) -> tuple[Path, Path]:
    md = tmp_path / "catalogue.md"
    md.write_text(MARKDOWN, encoding="utf-8")
    page = tmp_path / "catalogue.html"
    page.write_text(HTML, encoding="utf-8")
    return md, page


@pytest.mark.parametrize("which", ["markdown", "html"])
def test_one_block_per_row_under_the_right_heading(table_files, which):
    path, rows = (table_files[0], MD_ROWS) if which == "markdown" else (table_files[1], HTML_ROWS)
    doc = loaders.load(path)
    assert doc.kind == which
    texts = [b.text for b in doc.blocks]
    first = texts.index(line(rows[0]))
    assert texts[first:first + len(rows)] == [line(r) for r in rows]
    assert all(heading_of(doc, first + i) == "Model catalogue" for i in range(len(rows)))
    assert texts[first - 1].startswith(("The models", "Published models"))  # paragraph (or caption) before it
    assert [b.text for b in doc.blocks if b.kind == "heading"][-1] == "Hardware"
    assert texts[-1] == "The cluster has forty nodes."
    for name, *_ in rows:  # each cell once: not again as a run of loose cells
        assert doc.text.count(name) == 1
    assert "|-" not in doc.text and "<td>" not in doc.text
    if which == "markdown":  # offsets still point into the file: the rows start where the table does
        assert doc.blocks[first].start == MARKDOWN.index("| Model |")
    else:
        assert texts[first - 1] == "Published models" and doc.title == "Catalogue"
        starts = [b.start for b in doc.blocks]
        assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_markdown_cells_reduce_inline_markup_and_table_interrupts_nothing_else(tmp_path):
    p = tmp_path / "m.md"
    p.write_text("# T\n\nBefore.\n\n| *Model* | Context |\n|---|---|\n| **Quillon-7** `q` | [8192](http://x) |\n"
                 "| ![Brastow](b.png) | |\n\n```\n| not | a table |\n|---|---|\n```\n\nAfter.\n", encoding="utf-8")
    texts = [b.text for b in loaders.load(p).blocks]
    assert texts[:4] == ["T", "Before.", "Model: Quillon-7 q | Context: 8192", "Model: Brastow"]
    assert texts[4].startswith("```\n| not | a table |") and texts[5] == "After."


def test_html_header_from_th_row_no_header_nested_and_unclosed_cells(tmp_path):
    p = tmp_path / "t.html"
    p.write_text("<h2>Specs</h2><table><tr><th>Model<th>Context</tr>"
                 "<tr><td>Quillon-7<td><b>8192</b> tokens</tr>"
                 "<tr><td>Brastow-3</td><td><table><tr><td>2048</td><td>base</td></tr></table></td></tr></table>"
                 "<table><tr><td>loose</td><td>cells</td></tr></table><p>End.</p>")
    doc = loaders.load(p)
    assert [b.text for b in doc.blocks] == ["Specs", "Model: Quillon-7 | Context: 8192 tokens",
                                            "Model: Brastow-3 | Context: 2048 base", "loose | cells", "End."]


# ------------------------------------------------------------------ (c) the real library finds the row
def test_question_about_one_cell_finds_its_row(table_files, library):
    report = library.ingest(list(table_files))
    assert sorted(Path(p).name for p in report.added) == ["catalogue.html", "catalogue.md"], report.failed
    for question, want, name in [("What is the context length of Quillon-7?", line(MD_ROWS[0]), "catalogue.md"),
                                 ("What is the context length of Skelbrook-15?", line(HTML_ROWS[2]),
                                  "catalogue.html"),
                                 ("Which licence does Orvelle-1 have?", line(MD_ROWS[3]), "catalogue.md")]:
        hits = library.search(question, k=3)
        found = [h for h in hits if want in h.chunk.text]
        assert found, (question, [h.chunk.text for h in hits])
        assert found[0].chunk.name == name and found[0].chunk.heading == "Model catalogue"
