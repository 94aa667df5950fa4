"""OpenDocument text (.odt): packages laid out as LibreOffice Writer saves them (mimetype first and
stored, manifest, content.xml with automatic styles, meta.xml), loaded by the real loader and indexed
by the real Library with the real embedding model. Headings, the Title style, lists, spaces, table rows
that keep their column names, footnotes, and every bad-file case as a typed error naming the file."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from rag.ingest import loaders
from rag.ingest.loaders import CorruptFile, EmptyFile, EncryptedFile

NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
      'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
      'xmlns:dc="http://purl.org/dc/elements/1.1/" '
      'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.3"')
MODELS = [("Zephyrine-7B", "32768", "Apache-2.0"), ("Quillmoth-3B", "4096", "MIT"),
          ("Brackenfold-1B", "2048", "BSD-3-Clause")]


def _cell(text: str, **attrs) -> str:
    extra = "".join(f' table:{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<table:table-cell office:value-type="string"{extra}><text:p>{text}</text:p></table:table-cell>'


def handbook_body() -> str:
    rows = "".join(f"<table:table-row>{_cell(m)}{_cell(c)}{_cell(lic)}</table:table-row>" for m, c, lic in MODELS)
    return (
        '<text:sequence-decls><text:sequence-decl text:display-outline-level="0" text:name="Table"/></text:sequence-decls>'
        '<text:p text:style-name="P1">Local Model Handbook</text:p>'
        '<text:h text:style-name="Heading_20_1" text:outline-level="1">Overview</text:h>'
        '<text:p text:style-name="Text_20_body">This handbook lists the <text:span text:style-name="T1">small</text:span> '
        'language models we run on laptops<text:note text:id="ftn1" text:note-class="footnote">'
        '<text:note-citation>1</text:note-citation><text:note-body><text:p text:style-name="Footnote">Laptops with '
        '16 GB of memory or more.</text:p></text:note-body></text:note>, and how to pick one.</text:p>'
        '<text:h text:style-name="Heading_20_2" text:outline-level="2">Model table</text:h>'
        '<text:p text:style-name="Text_20_body">The table below gives each model\'s context window and licence.</text:p>'
        '<table:table table:name="Table1"><table:table-column table:number-columns-repeated="3"/>'
        f'<table:table-header-rows><table:table-row>{_cell("Model")}{_cell("Context")}{_cell("Licence")}'
        f'</table:table-row></table:table-header-rows>{rows}</table:table>'
        '<text:h text:outline-level="2">Installing</text:h>'
        '<text:list text:style-name="L1"><text:list-item><text:p>Copy the model folder into the models directory.</text:p>'
        '</text:list-item><text:list-item><text:p>Run<text:s text:c="2"/>make<text:tab/>install, then restart the '
        'application.</text:p></text:list-item></text:list>'
        '<text:soft-page-break/>'
        '<text:h text:outline-level="1">Garden care</text:h>'
        '<text:p>Tomatoes need six hours of direct sunlight every day and water at the roots.</text:p>')


def write_odt(path: Path, body: str, *, title: str = "Handbook meta title", mimetype: str = "application/vnd.oasis.opendocument.text",
              manifest_extra: str = "", styles: str = "") -> Path:
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {NS}><office:automatic-styles>'
               '<style:style style:name="P1" style:family="paragraph" style:parent-style-name="Title"/>'
               '<style:style style:name="T1" style:family="text"><style:text-properties fo:font-weight="bold"/>'
               f'</style:style>{styles}</office:automatic-styles>'
               f'<office:body><office:text>{body}</office:text></office:body></office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
                f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{manifest_extra}'
                '</manifest:file-entry></manifest:manifest>')
    meta = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {NS}><office:meta>'
            f'<dc:title>{title}</dc:title></office:meta></office:document-meta>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", content)
        z.writestr("meta.xml", meta)
        z.writestr("META-INF/manifest.xml", manifest)
    path.write_bytes(buf.getvalue())
    return path


def test_kind_and_supported():
    assert loaders.kind_for(Path("a.odt")) == "odt" and loaders.kind_for(Path("Report.ODT")) == "odt"
    assert ".odt" in loaders.SUPPORTED_EXTS
    assert not loaders.is_supported(Path("a.ods"))


def test_headings_lists_footnotes_and_table_rows_in_order(tmp_path):
    doc = loaders.load(write_odt(tmp_path / "handbook.odt", handbook_body()))
    assert doc.kind == "odt" and doc.pages == 0
    assert doc.title == "Local Model Handbook"  # the Title-styled paragraph, before the meta title
    heads = [(b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert heads == [(1, "Local Model Handbook"), (1, "Overview"), (2, "Model table"), (2, "Installing"),
                     (1, "Garden care")]
    texts = [b.text for b in doc.blocks]
    # the span's text is kept, the footnote's number is not, and its body follows the paragraph
    para = "This handbook lists the small language models we run on laptops, and how to pick one."
    assert texts[texts.index(para) + 1] == "Laptops with 16 GB of memory or more."
    rows = [f"Model: {m} | Context: {c} | Licence: {lic}" for m, c, lic in MODELS]
    first = texts.index(rows[0])
    assert texts[first:first + len(rows)] == rows and texts[first + len(rows)] == "Installing"
    assert "Model | Context | Licence" not in doc.text
    assert "Copy the model folder into the models directory." in texts
    assert "Run  make\tinstall, then restart the application." in texts  # <text:s text:c="2"/> is two spaces
    assert all(doc.text[b.start:b.start + len(b.text)] == b.text for b in doc.blocks)


def test_preformatted_paragraphs_are_one_fenced_block_with_their_indentation(tmp_path):
    """As LibreOffice saves code (an HTML page's <pre>, its "Preformatted Text" style): a paragraph a line, the
    leading spaces as text:s, through an automatic style ("P2") or the style itself. Consecutive ones are one
    fenced block, indentation and blank lines kept, apart from the prose around them."""
    body = ('<text:p text:style-name="Text_20_body">The def() routine compresses data from an input file.</text:p>'
            '<text:p text:style-name="P2">int def(FILE *source, FILE *dest, int level)</text:p>'
            '<text:p text:style-name="P2">{</text:p>'
            '<text:p text:style-name="Preformatted_20_Text"><text:s text:c="4"/>int ret, flush;</text:p>'
            '<text:p text:style-name="P2"/>'
            '<text:p text:style-name="P2"><text:s text:c="4"/>strm.zalloc = Z_NULL;</text:p>'
            '<text:p text:style-name="P2">}</text:p>'
            '<text:p text:style-name="Text_20_body">Here are the local variables for def().</text:p>')
    path = write_odt(tmp_path / "zlib.odt", body, styles='<style:style style:name="P2" style:family="paragraph" '
                     'style:parent-style-name="Preformatted_20_Text"/>')
    doc = loaders.load(path)
    code = ["int def(FILE *source, FILE *dest, int level)", "{", "    int ret, flush;", "", "    strm.zalloc = Z_NULL;", "}"]
    assert [b.text for b in doc.blocks] == ["The def() routine compresses data from an input file.",
                                            "```\n" + "\n".join(code) + "\n```", "Here are the local variables for def()."]


def test_meta_title_when_there_is_no_heading(tmp_path):
    doc = loaders.load(write_odt(tmp_path / "notes.odt", "<text:p>Only a paragraph here.</text:p>", title="Quarterly Notes"))
    assert doc.title == "Quarterly Notes" and [b.kind for b in doc.blocks] == ["text"]


def test_merged_and_repeated_cells(tmp_path):
    body = ('<table:table><table:table-row>' + _cell("Setting") + _cell("Default") + _cell("Meaning") + '</table:table-row>'
            '<table:table-row>' + _cell("LRC_TOP_K") + _cell("6", number_columns_spanned="2")
            + '<table:covered-table-cell/></table:table-row>'
            '<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/>'
            '</table:table-row></table:table>')
    doc = loaders.load(write_odt(tmp_path / "settings.odt", body))
    assert [b.text for b in doc.blocks] == ["Setting: LRC_TOP_K | Default: 6"]  # empty repeated rows add nothing


def test_an_indexed_odt_row_is_found_and_cited(tmp_path, library):
    good = write_odt(tmp_path / "handbook.odt", handbook_body())
    report = library.ingest([good])
    assert report.added == [str(good.resolve())] and not report.failed
    hits = library.search("What is the context length of Quillmoth-3B?", k=3)
    row = "Model: Quillmoth-3B | Context: 4096 | Licence: MIT"
    holding = [h for h in hits if row in h.chunk.text]
    assert holding, [h.chunk.text[:80] for h in hits]
    assert holding[0].chunk.citation().startswith("handbook.odt")


def make_bad(tmp_path: Path, case: str) -> Path:
    if case == "random":
        p = tmp_path / "random.odt"
        p.write_bytes(os.urandom(4096))
    elif case == "truncated":
        good = write_odt(tmp_path / "whole.odt", handbook_body()).read_bytes()
        p = tmp_path / "truncated.odt"
        p.write_bytes(good[: len(good) // 2])
    elif case == "spreadsheet":
        p = write_odt(tmp_path / "sheet.odt", "<text:p>x</text:p>", mimetype="application/vnd.oasis.opendocument.spreadsheet")
    elif case == "password":
        p = write_odt(tmp_path / "secret.odt", "<text:p>x</text:p>", manifest_extra=(
            '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
            '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
            '</manifest:encryption-data>'))
    elif case == "entity":  # an XML bomb: refused, never expanded
        p = tmp_path / "bomb.odt"
        write_odt(p, "<text:p>&lol9;</text:p>")
        data = zipfile.ZipFile(p).read("content.xml").decode()
        lol = '<!DOCTYPE d [<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)) + "]>"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
            z.writestr("content.xml", data.replace("?>", "?>" + lol, 1))
        p.write_bytes(buf.getvalue())
    else:  # "empty": a valid package whose body holds no text
        p = write_odt(tmp_path / "blank.odt", "<text:p>   </text:p><text:p/>")
    return p


@pytest.mark.parametrize("case,error", [("random", CorruptFile), ("truncated", CorruptFile), ("spreadsheet", CorruptFile),
                                        ("password", EncryptedFile), ("entity", CorruptFile), ("empty", EmptyFile)])
def test_bad_odt_raise_typed_errors_naming_the_file(tmp_path, case, error):
    p = make_bad(tmp_path, case)
    with pytest.raises(error) as info:
        loaders.load(p)
    assert isinstance(info.value, error)
    msg = str(info.value)
    assert msg.startswith(p.name + ": ")
    if error is CorruptFile:
        assert "not a valid OpenDocument text (.odt)" in msg
    if case == "password":
        assert "password" in msg and "PDF" not in msg
    if case == "spreadsheet":
        assert "spreadsheet" in msg
