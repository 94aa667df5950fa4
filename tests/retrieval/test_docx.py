"""Word documents (.docx): real files written with python-docx, loaded by the real loader, indexed by the
real Library with the real embedding model. Headings, table rows that keep their column names, and
every bad-file case as a typed error naming the file."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import docx
import pytest

from rag.ingest import loaders, pool
from rag.ingest.loaders import CorruptFile, EmptyFile

MODELS = [("Zephyrine-7B", "32768", "Apache-2.0"), ("Quillmoth-3B", "4096", "MIT"),
          ("Brackenfold-1B", "2048", "BSD-3-Clause"), ("Ostravel-14B", "131072", "Llama")]


def write_models_docx(path: Path) -> Path:
    d = docx.Document()
    d.core_properties.title = "Core title not used when a heading exists"
    d.add_heading("Local Model Handbook", level=0)  # the "Title" style
    d.add_heading("Overview", level=1)
    d.add_paragraph("This handbook lists the small language models we run on laptops, and how to pick one.")
    d.add_heading("Model table", level=2)
    d.add_paragraph("The table below gives each model's context window and licence.")
    table = d.add_table(rows=1, cols=3)
    for cell, name in zip(table.rows[0].cells, ("Model", "Context", "Licence")):
        cell.text = name
    for row in MODELS:
        for cell, value in zip(table.add_row().cells, row):
            cell.text = value
    d.add_heading("Installing", level=2)
    d.add_paragraph("Copy the model folder into the models directory and restart the application. "
                    "The first start converts the weights, which takes a few minutes.")
    d.add_heading("Garden care", level=1)
    d.add_paragraph("Tomatoes need six hours of direct sunlight every day and water at the roots.")
    d.add_heading("Kettle", level=3)
    d.add_paragraph("Descale the kettle with vinegar and water, then rinse it twice before use.")
    d.save(str(path))
    return path


def test_kind_and_supported():
    assert loaders.kind_for(Path("a.docx")) == "docx"
    assert loaders.kind_for(Path("Report.DOCX")) == "docx"
    assert loaders.is_supported(Path("a.docx"))
    assert ".docx" in loaders.SUPPORTED_EXTS
    assert not loaders.is_supported(Path("a.doc"))


def test_headings_paragraphs_and_table_rows_in_order(tmp_path):
    doc = loaders.load(write_models_docx(tmp_path / "handbook.docx"))
    assert doc.kind == "docx" and doc.pages == 0
    assert doc.title == "Local Model Handbook"
    heads = [(b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert heads == [(1, "Local Model Handbook"), (1, "Overview"), (2, "Model table"), (2, "Installing"),
                     (1, "Garden care"), (3, "Kettle")]
    texts = [b.text for b in doc.blocks]
    rows = [f"Model: {m} | Context: {c} | Licence: {lic}" for m, c, lic in MODELS]
    for row in rows:
        assert row in texts
    # the table sits where it is in the document: after its heading and intro, before the next heading
    first, last = texts.index(rows[0]), texts.index(rows[-1])
    assert texts.index("Model table") < texts.index("The table below gives each model's context window and licence.") \
        < first
    assert last - first == len(rows) - 1 and texts.index("Installing") == last + 1
    assert "Model | Context | Licence" not in doc.text  # the header is in every row, not a row of its own
    starts = [b.start for b in doc.blocks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(doc.text[b.start:b.start + len(b.text)] == b.text for b in doc.blocks)


CODE = ["int def(FILE *source, FILE *dest, int level)", "{", "    int ret, flush;", "", "    /* allocate deflate state */",
        "    strm.zalloc = Z_NULL;", "}"]


def test_code_paragraphs_are_one_fenced_block_with_their_indentation(tmp_path):
    """Read by eye on Debian's zlib how-to saved as .docx by LibreOffice: its code is one "Preformatted Text"
    paragraph a line, and the quote ran the code into the sentences around it. Consecutive paragraphs in a style
    for code (by its name, or a style based on one) are one fenced block, indentation and blank lines kept; the
    prose around it stays prose, and ``sentence_spans`` keeps the block apart."""
    from docx.enum.style import WD_STYLE_TYPE

    from rag.text import sentence_spans

    d = docx.Document()
    pre = d.styles.add_style("Preformatted Text", WD_STYLE_TYPE.PARAGRAPH)
    own = d.styles.add_style("Zlib Sample", WD_STYLE_TYPE.PARAGRAPH)
    own.base_style = pre
    d.add_paragraph("The def() routine compresses data from an input file to an output file.")
    for i, line in enumerate(CODE):
        d.add_paragraph(line, style=pre if i < 4 else own)
    d.add_paragraph("Here are the local variables for def().")
    path = tmp_path / "zlib.docx"
    d.save(path)
    doc = loaders.load(path)
    block = "```\n" + "\n".join(CODE) + "\n```"
    assert [b.text for b in doc.blocks] == ["The def() routine compresses data from an input file to an output file.",
                                            block, "Here are the local variables for def()."]
    spans = [doc.text[a:b].strip() for a, b in sentence_spans(doc.text)]
    assert block in spans, spans


def test_core_title_when_there_is_no_heading(tmp_path):
    d = docx.Document()
    d.core_properties.title = "Quarterly Notes"
    d.add_paragraph("Only a paragraph here.")
    d.save(str(tmp_path / "notes.docx"))
    doc = loaders.load(tmp_path / "notes.docx")
    assert doc.title == "Quarterly Notes"
    assert [b.kind for b in doc.blocks] == ["text"]


def _zip_without_document(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types '
                   'xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("notes.txt", "not a Word document")
    path.write_bytes(buf.getvalue())
    return path


def make_bad(tmp_path: Path, case: str) -> Path:
    if case == "random":
        p = tmp_path / "random.docx"
        p.write_bytes(os.urandom(4096))
    elif case == "zip-without-document":
        p = _zip_without_document(tmp_path / "hollow.docx")
    elif case == "truncated":
        good = write_models_docx(tmp_path / "whole.docx").read_bytes()
        p = tmp_path / "truncated.docx"
        p.write_bytes(good[: len(good) // 2])
    elif case == "old-doc":
        p = tmp_path / "legacy.docx"
        p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(2048))
    else:  # "empty": a valid docx holding no text (an empty paragraph and a heading-less empty table)
        d = docx.Document()
        d.add_paragraph("   ")
        d.add_table(rows=2, cols=2)
        p = tmp_path / "blank.docx"
        d.save(str(p))
    return p


@pytest.mark.parametrize("case,error", [("random", CorruptFile), ("zip-without-document", CorruptFile),
                                        ("truncated", CorruptFile), ("old-doc", CorruptFile),
                                        ("empty", EmptyFile)])
def test_bad_docx_raise_typed_errors_naming_the_file(tmp_path, case, error):
    p = make_bad(tmp_path, case)
    with pytest.raises(error) as info:
        loaders.load(p)
    assert type(info.value) is error
    assert str(info.value).startswith(p.name + ": ")
    if error is CorruptFile:
        assert "not a valid Word document (.docx)" in str(info.value)
    if case == "old-doc":
        assert ".doc" in str(info.value) and "password" in str(info.value)


def test_indexed_docx_row_found_with_its_heading(tmp_path, library):
    good = write_models_docx(tmp_path / "handbook.docx")
    report = library.ingest([good])
    assert report.added == [str(good.resolve())] and not report.failed
    for model, context, licence in MODELS:
        row = f"Model: {model} | Context: {context} | Licence: {licence}"
        hits = library.search(f"What is the context length of {model}?", k=3)
        holding = [h for h in hits if row in h.chunk.text]
        assert holding, f"{model}: the row is not in the top 3: {[h.chunk.text[:80] for h in hits]}"
        assert holding[0].chunk.heading == "Model table"
        assert "Model table" in holding[0].chunk.context
    # an unrelated question finds its own section, not the table
    top = library.search("How often should I descale the kettle?", k=1)[0]
    assert "Descale the kettle" in top.chunk.text and top.chunk.heading == "Kettle"


def test_batch_with_bad_docx_still_indexes_the_good_one(tmp_path, library, monkeypatch):
    good = write_models_docx(tmp_path / "handbook.docx")
    bad = {case: make_bad(tmp_path, case) for case in ("random", "zip-without-document", "empty")}
    started = []
    real_start = pool.start_loader_process

    def counting_start():  # the real loader process, counted: .docx files are read there, like PDFs
        proc = real_start()
        started.append(proc.pid)
        return proc

    monkeypatch.setattr(pool, "start_loader_process", counting_start)
    report = library.ingest([good, *bad.values()])
    assert started, "a run with .docx files did not use loader processes"
    assert report.added == [str(good.resolve())]
    failed = dict(report.failed)
    assert len(failed) == 3
    for case, path in bad.items():
        reason = next(r for f, r in failed.items() if Path(f).name == path.name)
        assert reason.startswith(path.name + ": ")
        expected = "holds no text" if case == "empty" else "not a valid Word document (.docx)"
        assert expected in reason, (case, reason)
    hits = library.search("What licence does Brackenfold-1B have?", k=3)
    assert any("Model: Brackenfold-1B | Context: 2048 | Licence: BSD-3-Clause" in h.chunk.text for h in hits)
    assert {Path(e.name).name for e in library.files()} == {"handbook.docx"}
