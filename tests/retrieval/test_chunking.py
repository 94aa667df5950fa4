"""Chunking: within the embedder's window (counted with its own tokenizer), headings carried,
offsets and pages kept, sentence boundaries preferred."""
from __future__ import annotations

import pytest

from rag.ingest import loaders
from rag.ingest.chunking import Chunker

from .conftest import need


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(embedder.count_tokens, embedder.window)


@pytest.mark.parametrize("name", ["pdfs/R-exts.pdf", "pdfs/gnuplot.pdf", "python-docs/library/os.rst.txt",
                                  "python-docs/glossary.rst.txt"])
def test_no_chunk_exceeds_the_window(datasets, embedder, chunker, name):
    doc = loaders.load(need(datasets / name))
    drafts = chunker.chunk(doc)
    assert len(drafts) > 20
    # exact count with the model's tokenizer, special tokens included, of what is embedded
    enc = embedder.tokenizer([d.embed_text for d in drafts], add_special_tokens=True, truncation=False)["input_ids"]
    assert max(len(ids) for ids in enc) <= embedder.max_tokens
    # and the chunks are not tiny: the window is used
    assert sum(len(ids) for ids in enc) / len(enc) > 100
    # what is embedded (the views) stays within MiniLM's trained length, and covers the chunk
    views = [v for d in drafts for v in d.views]
    venc = embedder.tokenizer(views, add_special_tokens=True, truncation=False)["input_ids"]
    assert max(len(ids) for ids in venc) <= chunker.view_tokens + 2
    def words(text: str) -> list[str]:  # (the fences around a piece of a cut code block are no content)
        return [w for w in text.split() if w != "```"]

    for d in drafts[:50]:
        body = " ".join(v.split("\n", 1)[1] if d.embed_text != d.text else v for v in d.views)
        assert words(body) == words(d.text) or len(d.views) == 1


def test_headings_pages_and_offsets(rfaq_pdf, chunker):
    doc = loaders.load(rfaq_pdf)
    drafts = chunker.chunk(doc)
    what_is_r = [d for d in drafts if d.heading == "2.1 What is R?"]
    assert what_is_r and all(d.embed_text.startswith("2 R Basics > 2.1 What is R?\n") for d in what_is_r)
    assert what_is_r[0].page == 7 and what_is_r[0].text.startswith("R is a system for statistical computation")
    # no chunk mixes two sections: the next section starts a new chunk
    assert not any("2.2 What machines" in d.text for d in what_is_r)
    # offsets point into the page text they came from
    block = next(b for b in doc.blocks if b.page == what_is_r[0].page and b.kind == "text"
                 and b.start <= what_is_r[0].start < b.start + len(b.text))
    assert block.text[what_is_r[0].start - block.start:].startswith("R is a system")
    # contents pages (2-4) give no chunks; every chunk has a page
    assert all(d.page not in (2, 3, 4) for d in drafts) and all(d.page for d in drafts)


def test_long_section_splits_evenly_with_overlap_at_sentences(tmp_path, chunker, embedder):
    sentences = [f"Sentence number {i} talks about topic {i % 7} in a plain way." for i in range(120)]
    p = tmp_path / "long.md"
    p.write_text("# Long section\n\n" + " ".join(sentences), encoding="utf-8")
    drafts = chunker.chunk(loaders.load(p))
    assert len(drafts) >= 3
    sizes = [d.tokens for d in drafts]
    assert max(sizes) <= embedder.window and min(sizes) > 0.5 * max(sizes)  # even, no tiny tail
    for a, b in zip(drafts, drafts[1:]):
        assert a.text.endswith(".") and b.text.startswith("Sentence")  # sentence boundaries
        assert a.text.split(". ")[-1].rstrip(".") in b.text  # overlap: the last sentence repeats
    assert all(d.heading == "Long section" for d in drafts)


def test_one_huge_sentence_is_cut_to_fit(tmp_path, chunker, embedder):
    p = tmp_path / "blob.txt"
    p.write_text(" ".join(f"tok{i}_x" for i in range(3000)), encoding="utf-8")
    drafts = chunker.chunk(loaders.load(p))
    assert len(drafts) > 5 and max(d.tokens for d in drafts) <= embedder.window
    assert drafts[0].text.startswith("tok0_x") and drafts[-1].text.endswith("tok2999_x")


def test_a_code_block_cut_between_chunks_stays_fenced_in_each(tmp_path, chunker, embedder):
    """A code block longer than a chunk: each chunk that holds a piece of it has the piece between fences,
    so a chunk that starts inside the code does not read its closing fence as an opening one (and the prose
    after it as code)."""
    code = "\n".join(f"    value_{i} = compute(value_{i - 1}, {i});" for i in range(1, 160))
    p = tmp_path / "long-code.md"
    p.write_text(f"# Code\n\nThe loop is set up like this.\n\n```python\n{code}\n```\n\nThat is the whole loop. "
                 "Each value depends on the one before.\n", encoding="utf-8")
    drafts = chunker.chunk(loaders.load(p))
    assert len(drafts) >= 3 and max(d.tokens for d in drafts) <= embedder.window
    assert all(d.text.count("```") % 2 == 0 for d in drafts), [d.text[:80] for d in drafts]
    assert drafts[-1].text.rstrip().endswith("Each value depends on the one before.")
    from rag.answer.evidence import split
    assert split(drafts[-1].text)[-2:] == ["That is the whole loop.", "Each value depends on the one before."]
