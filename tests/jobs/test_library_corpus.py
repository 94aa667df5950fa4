"""The corpus of `rag bench library` (bench/library_corpus.py): N files from the shared real documents, no two
alike, spread over the job folders; its copies hold the same bytes under other paths."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from rag.config import REPO_ROOT, settings

sys.path.insert(0, str(REPO_ROOT / "bench"))
from library_corpus import copies, make_corpus  # noqa: E402


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_corpus_makes_n_distinct_files_of_real_documents(tmp_path):
    data = settings().datasets_dir
    if not (data / "python-docs").is_dir() or not (data / "pdfs").is_dir():
        pytest.fail(f"the shared datasets are missing at {data} (set LRC_DATASETS)", pytrace=False)
    files = make_corpus(tmp_path / "corpus", 64, data, parts=4, pdf_share=0.1)
    assert len(files) == 64 and all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert len({digest(f) for f in files}) == 64  # no two files identical
    texts = [f for f in files if f.suffix == ".txt"]
    assert len({f.read_text(encoding="utf-8").split("\n\n", 1)[1] for f in texts}) > len(texts) // 2
    pdfs = [f for f in files if f.suffix == ".pdf"]
    assert len(pdfs) == 6
    from pypdf import PdfReader

    assert all(1 <= len(PdfReader(f).pages) <= 3 for f in pdfs)
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["part00", "part01", "part02", "part03"]
    assert {len(list(p.iterdir())) for p in (tmp_path / "corpus").iterdir()} == {16}
    dup = copies(files[:10], tmp_path / "copies", 25)
    assert len({str(p) for p in dup}) == 25 and digest(dup[13]) == digest(files[3])
