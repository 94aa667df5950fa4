"""Words a typeset PDF breaks at a line end come back whole (rag.ingest.loaders.pdf_layout.dehyphenate)."""
from __future__ import annotations

import re

from rag.ingest import loaders
from rag.ingest.loaders.pdf_layout import dehyphenate, footnote_start, set_apart_footnotes, vocabulary
from rag.text import sentence_spans

from .conftest import need


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
