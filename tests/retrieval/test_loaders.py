"""Loaders: every supported type, every bad-file case as a typed error naming the file."""
from __future__ import annotations

import pypdf
import pytest

from rag.ingest import loaders
from rag.ingest.loaders import (BinaryFile, CorruptFile, EmptyFile, EncryptedFile, FileTooLarge, LoaderError,
                                NoTextLayer, UndecodableText, UnsupportedType)
from rag.ingest.loaders.pdf_layout import LEADER

from .conftest import need


def test_markdown_headings_and_code_fences(tmp_path):
    p = tmp_path / "notes.md"
    p.write_text("# Title\n\nIntro text.\n\n## Install\n\nRun it.\n\n```python\n# not a heading\nx = 1\n```\n"
                 "Setext heading\n--------------\n\nBody.\n", encoding="utf-8")
    doc = loaders.load(p)
    heads = [(b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert heads == [(1, "Title"), (2, "Install"), (2, "Setext heading")]
    assert "# not a heading" in doc.text
    assert doc.kind == "markdown"


def test_rst_txt_is_restructuredtext(tmp_path):
    p = tmp_path / "guide.rst.txt"
    p.write_text("*****\nGuide\n*****\n\nSection one\n===========\n\nSome text here.\n\nSub\n---\n\nMore.\n")
    doc = loaders.load(p)
    assert doc.kind == "rst"
    assert [(b.level, b.text) for b in doc.blocks if b.kind == "heading"] == [(1, "Guide"), (2, "Section one"),
                                                                             (3, "Sub")]


def test_html_visible_text_only(tmp_path):
    p = tmp_path / "page.html"
    p.write_text("<html><head><title>T</title><style>body{color:red}</style></head><body>"
                 "<script>var hidden = 1;</script><h2>Usage</h2><p>Visible &amp; readable.</p></body></html>")
    doc = loaders.load(p)
    assert "hidden" not in doc.text and "color:red" not in doc.text
    assert "Visible & readable." in doc.text
    assert [b.text for b in doc.blocks if b.kind == "heading"] == ["Usage"]


def test_plain_text_titles_underlined_are_headings(tmp_path):
    """Release notes and READMEs underline their titles as reStructuredText does; as text, "Git 2.20 Release Notes
    ====== Backward Compatibility Notes ------" was one quoted sentence."""
    p = tmp_path / "2.20.0.txt"
    p.write_text("Git 2.20 Release Notes\n======================\n\nBackward Compatibility Notes\n"
                 "----------------------------\n\n * \"git help -a\" now gives verbose output.\n\n=====\n\nThe end.\n"
                 "```\nA line between two fences is no title.\n```\n", encoding="utf-8")
    doc = loaders.load(p)
    assert doc.kind == "text" and doc.title == "Git 2.20 Release Notes"
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Git 2.20 Release Notes"), ("heading", 2, "Backward Compatibility Notes"),
        ("text", 0, '* "git help -a" now gives verbose output.'), ("text", 0, "====="),
        ("text", 0, "The end.\n```\nA line between two fences is no title.\n```")]


def test_a_markdown_code_block_is_one_block_however_many_blank_lines_it_holds(tmp_path):
    """Cut at its blank lines, a code block could leave a chunk starting inside code, whose closing fence then
    read as an opening one; an indented block and a ~~~ block get backtick fences (what the sentence rules know)."""
    p = tmp_path / "build.md"
    p.write_text("# Build\n\nRun this:\n\n```python\nx = 1\n\ny = 2\n```\n\nThen this:\n\n    make\n\n"
                 "    make install\n\nDone.\n\n~~~sh\nls\n~~~\nAfter.\n", encoding="utf-8")
    doc = loaders.load(p)
    text = [b for b in doc.blocks if b.kind == "text"]
    assert [b.text for b in text] == ["Run this:", "```python\nx = 1\n\ny = 2\n```", "Then this:",
                                      "```\nmake\n\nmake install\n```", "Done.", "```sh\nls\n```", "After."]
    source = p.read_text(encoding="utf-8")  # offsets in the file, as for every Markdown block
    assert source[text[1].start:].startswith("```python") and source[text[3].start:].startswith("    make")


def test_rst_literal_blocks_are_fenced_code_blocks(tmp_path):
    """The indented lines after "::" (or a code directive) are one fenced block, dedented, blank lines kept;
    the lead-in reads as rst shows it ("Example::" -> "Example:", "Then ::" -> "Then")."""
    p = tmp_path / "howto.rst"
    p.write_text("Usage\n=====\n\nFor example::\n\n    import foo\n\n    foo.bar()\n\nThis does X.\n\n"
                 ".. code-block:: python\n   :linenos:\n\n   x = 1\n     y = 2\n\nThen build it ::\n\n   $ make\n\n"
                 "Last::\nnot indented, so no code.\n", encoding="utf-8")
    doc = loaders.load(p)
    assert [b.text for b in doc.blocks if b.kind == "text"] == [
        "For example:", "```\nimport foo\n\nfoo.bar()\n```", "This does X.", "```python\nx = 1\n  y = 2\n```",
        "Then build it", "```\n$ make\n```", "Last::\nnot indented, so no code."]


def test_html_pre_is_a_fenced_code_block_apart_from_the_prose(tmp_path):
    """A <pre> keeps its lines and indentation as a fenced block (the model reads it as code); the prose
    around it stays its own sentences, as the quote shows them (it ran the code into the sentence before)."""
    p = tmp_path / "zpipe.html"
    p.write_text("<body>The output of <tt>inflate()</tt> is handled like that of deflate().\n<pre><b>\n"
                 "    have = CHUNK - strm.avail_out;\n    if (have != 0) {\n        (void)inflateEnd(&amp;strm);\n"
                 "    }\n</b></pre>\nThe inner loop ends when inflate() has no more output.</body>")
    doc = loaders.load(p)
    assert [b.text for b in doc.blocks] == [
        "The output of inflate() is handled like that of deflate().",
        "```\n    have = CHUNK - strm.avail_out;\n    if (have != 0) {\n        (void)inflateEnd(&strm);\n    }\n```",
        "The inner loop ends when inflate() has no more output."]
    from rag.answer.evidence import split
    assert split("\n".join(b.text for b in doc.blocks)) == [
        "The output of inflate() is handled like that of deflate().",
        "The inner loop ends when inflate() has no more output."]


def test_md_with_html_content_and_pdf_named_txt(tmp_path, small_pdf):
    p = tmp_path / "really-a-pdf.txt"
    p.write_bytes(small_pdf.read_bytes())
    assert loaders.load(p).kind == "pdf"  # content wins over the extension


@pytest.mark.parametrize("case", ["corrupt", "encrypted", "binary", "empty", "toolarge", "unknown", "notext",
                                  "garbage", "pdf-extension-not-pdf"])
def test_bad_files_raise_typed_errors_naming_the_file(tmp_path, case, small_pdf):
    expected = {"corrupt": CorruptFile, "encrypted": EncryptedFile, "binary": BinaryFile, "empty": EmptyFile,
                "toolarge": FileTooLarge, "unknown": UnsupportedType, "notext": NoTextLayer,
                "garbage": UndecodableText, "pdf-extension-not-pdf": CorruptFile}[case]
    limit = 50.0
    if case == "corrupt":
        p = tmp_path / "broken.pdf"
        p.write_bytes(small_pdf.read_bytes()[:1500])  # truncated: header present, body gone
    elif case == "encrypted":
        p = tmp_path / "secret.pdf"
        w = pypdf.PdfWriter(clone_from=str(small_pdf))
        w.encrypt(user_password="pw", owner_password="owner")
        with open(p, "wb") as f:
            w.write(f)
    elif case == "binary":
        p = tmp_path / "image.txt"
        p.write_bytes(bytes(range(256)) * 20)
    elif case == "empty":
        p = tmp_path / "nothing.md"
        p.write_bytes(b"  \n\n ")
    elif case == "toolarge":
        p = tmp_path / "huge.txt"
        p.write_text("word " * 300_000)
        limit = 1.0
    elif case == "unknown":
        p = tmp_path / "data.xyz"
        p.write_text("some text")
    elif case == "notext":
        p = tmp_path / "scan.pdf"
        w = pypdf.PdfWriter()
        w.add_blank_page(612, 792)
        w.add_blank_page(612, 792)
        with open(p, "wb") as f:
            w.write(f)
    elif case == "garbage":
        p = tmp_path / "weird.txt"
        p.write_bytes(bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0x41]) * 200)
    else:
        p = tmp_path / "fake.pdf"
        p.write_text("this is not a pdf at all")
    with pytest.raises(expected) as info:
        loaders.load(p, max_file_mb=limit)
    err = info.value
    assert isinstance(err, LoaderError)
    assert p.name in str(err) and err.reason in str(err)


def test_legacy_encoding_falls_back(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("Caf\xe9 cr\xe8me \u2013 na\xefve r\xe9sum\xe9".encode("cp1252"))
    assert "Café crème – naïve résumé" in loaders.load(p).text


def test_pdf_pages_are_one_based_and_right(small_pdf):
    doc = loaders.load(small_pdf)
    assert doc.pages == 2 and doc.kind == "pdf"
    first = next(b for b in doc.blocks if "Ross Ihaka and Robert Gentleman" in b.text)
    assert first.page == 1
    later = next(b for b in doc.blocks if "2.5 How can R be installed?" in b.text)
    assert later.page == 2 and later.kind == "heading"


@pytest.mark.parametrize("name,pages", [("rfaq/R-FAQ.pdf", {2, 3, 4}), ("pdfs/R-intro.pdf", {3, 4, 5, 6}),
                                        ("pdfs/R-data.pdf", {3, 4}), ("pdfs/liboctave.pdf", {3})])
def test_contents_pages_recognised_in_shared_manuals(datasets, name, pages):
    doc = loaders.load(need(datasets / name))
    assert pages <= set(doc.contents_pages), doc.contents_pages
    # the body is kept: no more than a small share of pages is taken for contents/index
    assert len(doc.contents_pages) < 0.2 * doc.pages
    assert not any(LEADER.search(b.text) for b in doc.blocks if b.kind == "heading")


def test_contents_line_rules():
    toc = ["Table of Contents", "1 Introduction . . . . . . . . . . . . 1", "1.1 Legalese . . . . . . . . . 1",
           "1.2 Obtaining this document . . . . . . . 1", "2 R Basics . . . . . . . . . . 3",
           "2.1 What is R? . . . . . . . . . . 3", "2.2 What machines does R run on? . . . . . . . 3"]
    prose = ["R is a system for statistical computation and graphics. It consists of a language plus a",
             "run-time environment with graphics, a debugger, access to certain system functions, and",
             "the ability to run programs stored in script files.", "See Section 3.1, page 12.",
             "The core of R is an interpreted computer language which allows branching and looping",
             "as well as modular programming using functions."]
    assert loaders.is_contents_page(toc)
    assert not loaders.is_contents_page(prose)
