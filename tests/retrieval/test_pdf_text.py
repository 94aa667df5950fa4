"""PDF text a person can read: words a typeset PDF breaks at a line end come back whole
(rag.ingest.loaders.pdf_layout.dehyphenate), footnotes set apart, and the text engine (pdf_text) keeps words
whole and folds ligatures, on PDFs made here: a man page set by groff, a font that names its ligature glyphs."""
from __future__ import annotations

import re
import sys

import pypdf
import pytest

from rag.ingest import loaders
from rag.ingest.loaders import pdf_text
from rag.ingest.loaders.pdf_layout import dehyphenate, footnote_start, set_apart_footnotes, vocabulary
from rag.text import sentence_spans

from .conftest import REPO_ROOT, need

sys.path.insert(0, str(REPO_ROOT / "bench"))
from bench_pdf_text import LIGATURE_LINE, LIGATURES, broken_words, groff_pdf, named_glyph_pdf  # noqa: E402


def test_breaks_are_undone_with_the_documents_own_words():
    pages = [["Get the repository from the default mirror.", "R runs on Unix-alikes and Debian-based systems"],
             ["the reposi-", "tory holds a Unix-", "alikes port; de-", "fault builds; rsync-",
              "recommended fetches them; a MIT-", "style licence; Benchmark-", "ing shows it"],
             ["use rsync-recommended then"]]
    vocab = vocabulary(pages)
    text = "\n".join(pages[1])
    fixed = dehyphenate(text, vocab)
    assert "repository holds" in fixed  # joined: the document writes "repository"
    assert "Unix-alikes port" in fixed  # the compound is written with its hyphen elsewhere
    assert "default builds" in fixed
    assert "rsync-recommended fetches" in fixed  # an identifier the document writes whole elsewhere
    assert "MIT-style" in fixed  # an acronym starts a compound
    assert "Benchmarking shows" in fixed  # neither half pair nor a whole word: joined
    # the halves of a broken word are not words of the document
    assert "reposi" not in vocab[0] and "tory" not in vocab[0]


def test_a_hyphen_inside_a_line_is_left_alone():
    vocab = vocabulary([["non-empty and re-run"]])
    assert dehyphenate("a non-empty file, re-run it", vocab) == "a non-empty file, re-run it"


def test_real_manual_has_no_broken_words(datasets):
    doc = loaders.load(need(datasets / "pdfs" / "R-admin.pdf"))
    text = "\n".join(b.text for b in doc.blocks if b.kind == "text")
    # pypdf gives 100+ line-end breaks in this manual ("reposi-" / "tory", "rsync-" / "recommended")
    assert not re.search(r"\b(?:reposi|recom|di|subdi)-\s", text)
    assert "repository" in text and "rsync-recommended" in text
    assert len(re.findall(r"[a-z]-\n[a-z]", text)) == 0


def test_footnotes_are_set_apart_from_the_body():
    page = ["Set CXX20FLAGS as needed; see texi2dvi.14 The list:", "CXX20", "CXX20PICFLAGS",
            "14 This does not necessarily disable use of OpenMP: the configure code allows for it.",
            "15 Such as GNU tar 1.15 or later, bsdtar or tar from", "the Heirloom Toolchest."]
    # footnote 15 has no marker in the body: not footnotes (numbered lines of the body, data rows)
    assert footnote_start(page) is None
    page[0] = "Set CXX20FLAGS as needed; see texi2dvi.14 The list15 is:"
    assert footnote_start(page) == 3
    out = set_apart_footnotes(page)
    assert out[3] == "" and out[4].startswith("14 This") and out[5] == "" and out[6].startswith("15 Such")
    # a sentence ends at the paragraph break, so a quote never runs the body into a footnote
    spans = [" ".join(out)[a:b] for a, b in sentence_spans("\n".join(out))]
    assert not any("CXX20PICFLAGS" in s and "OpenMP" in s for s in spans)
    # data lines are not footnotes: numbers alone, or no marker above
    assert footnote_start(["x y", "1 0 0", "2 5 5"]) is None


def test_real_manual_footnote_is_its_own_sentence(datasets):
    doc = loaders.load(need(datasets / "pdfs" / "R-admin.pdf"))
    text = "\n".join(b.text for b in doc.blocks if b.kind == "text" and b.page == 17)
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    note = next(s for s in sentences if "does not necessarily disable use of OpenMP" in s)
    assert "CXX20PICFLAGS" not in note, note


# ------------------------------------------------------------------ the text engine (pdf_text)
@pytest.fixture(scope="module")
def groff_find(tmp_path_factory):
    """find(1) set by groff -Tpdf, as a user's man-page PDF is (groff: the Debian package, `make ocr`)."""
    try:
        return groff_pdf("find", tmp_path_factory.mktemp("groff"))
    except SystemExit as exc:
        pytest.fail(str(exc), pytrace=False)


def _rate(text: str) -> float:
    words, split, glued = broken_words(text)
    return (len(split) + len(glued)) / words


def test_a_groff_man_page_keeps_its_words_whole(groff_find):
    doc = loaders.load(groff_find)
    text = "\n".join(b.text for b in doc.blocks)
    assert not LIGATURES.search(text)
    assert _rate(text) < 0.001, broken_words(text)[1:]
    # pypdf set these apart ("e valuating", "ar gument") and PDFium glued or split them ("GNUfind", "e xamines")
    for whole in ("GNU find searches", "by evaluating the given expression", "examines", "argument"):
        assert whole in text, whole
    assert not re.search(r"\b(?:e valuating|ar gument|e xamines|GNUfind)\b", text)
    # the measure fails on the text the loader used to give: it would catch a return of split words
    old = "\n".join(page.extract_text() for page in pypdf.PdfReader(groff_find).pages)
    assert _rate(old) > 0.01


def test_groff_pages_and_line_end_hyphens_stay_right(groff_find, monkeypatch):
    reader = pypdf.PdfReader(groff_find)
    data = groff_find.read_bytes()
    pages, warnings, engine = pdf_text.page_texts(data, len(reader.pages), reader=reader)
    assert engine == "poppler" and not warnings and len(pages) == len(reader.pages) == loaders.load(groff_find).pages
    # each page's text is that page's: its words are the words pypdf finds on the same page
    for p in (0, len(pages) // 2, len(pages) - 1):
        mine = set(re.findall(r"[a-z]{6,}", pages[p].lower()))
        theirs = set(re.findall(r"[a-z]{6,}", reader.pages[p].extract_text().lower()))
        assert len(mine & theirs) > 0.8 * len(mine), p
    # PDFium alone (where pdftotext is missing): its marks for a word broken at a line end become "-\n"
    fallback, _, engine = pdf_text.page_texts(data, len(reader.pages), engine="pdfium")
    assert engine == "pdfium" and "prece-\ndence" in fallback[0] and "\x02" not in "".join(fallback)
    assert _rate("\n".join(fallback)) < _rate("\n".join(p.extract_text() for p in reader.pages)) / 5
    # and that is what the loader reads where pdftotext is not installed
    monkeypatch.setattr(pdf_text, "PDFTOTEXT", "pdftotext-not-installed")
    assert pdf_text.page_texts(data, len(reader.pages), reader=reader)[2] == "pdfium"


def test_ligatures_come_back_as_letters(tmp_path):
    pdf = tmp_path / "ligatures.pdf"
    pdf.write_bytes(named_glyph_pdf(LIGATURE_LINE))
    assert len(LIGATURES.findall(pypdf.PdfReader(pdf).pages[0].extract_text())) == 3  # the PDF holds them
    text = loaders.load(pdf).blocks[0].text
    assert text == "The files and flags of the office are listed in the settings."
    # and whatever an engine gives, the page text is folded (NFKC): ligatures, no-break spaces, full-width forms;
    # TeX's accent before its letter becomes one letter, not a space and a mark that split the word
    assert pdf_text.fold("\ufb01les\u00a0and \uff21\ufb02ag\r\nre\u00ad\nmove\x00") == "files and Aflag\nre-\nmove"
    assert pdf_text.fold("Wirtschaftsuniversit\u00a8at J\u00b4er\u02c6ome") == "Wirtschaftsuniversit\u00e4t J\u00e9r\u00f4me"
    # groff's ~ and ^ (ssh's escape keys, a home folder) stay what they are
    assert pdf_text.fold("type \u02dc. or \u02dc/.ssh/config, Ctrl-\u02c6]") == "type ~. or ~/.ssh/config, Ctrl-^]"


def test_a_tex_manuals_accented_names_stay_whole(datasets):
    doc = loaders.load(need(datasets / "pdfs" / "gnuplot.pdf"))
    text = "\n".join(b.text for b in doc.blocks)
    assert "J\u00e9r\u00f4me" in text and "Br\u00f6ker" in text  # TeX draws them as "J\u00b4erˆome", "Br\u00a8oker"
    assert not re.search(r"\s[\u0300-\u036f]", text)
