"""Fixtures for the retrieval tests: the real embedding model (loaded once per session), the shared
datasets (read in place, never copied), small real PDFs cut from them, and fresh libraries."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import settings as _settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = _settings().datasets_dir  # ../shared/datasets beside the repo, or LRC_DATASETS
SHARED = DATASETS.parent
GOLD_HIT = SHARED / "tools" / "gold_hit.py"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"missing test data: {path} (the shared datasets folder must sit beside the repo, or set LRC_DATASETS)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def datasets() -> Path:
    return need(DATASETS)


@pytest.fixture(scope="session")
def embedder():
    from rag.embedder import Embedder, EmbedderError

    try:
        return Embedder.get()
    except EmbedderError as exc:
        pytest.fail(f"the embedding model is missing: {exc} (run `make setup`)", pytrace=False)


@pytest.fixture(scope="session")
def rfaq_pdf(datasets) -> Path:
    return need(datasets / "rfaq" / "R-FAQ.pdf")


def cut_pdf(src: Path, pages: list[int], dest: Path) -> Path:
    """A real PDF made of some pages (1-based) of a real PDF."""
    import pypdf

    reader = pypdf.PdfReader(str(src))
    writer = pypdf.PdfWriter()
    for p in pages:
        writer.add_page(reader.pages[p - 1])
    with open(dest, "wb") as f:
        writer.write(f)
    return dest


@pytest.fixture(scope="session")
def small_pdf(rfaq_pdf, tmp_path_factory) -> Path:
    """R FAQ pages 7-8 (sections 2.1 to 2.5): two real pages."""
    return cut_pdf(rfaq_pdf, [7, 8], tmp_path_factory.mktemp("pdf") / "rfaq-basics.pdf")


@pytest.fixture
def library(tmp_path, embedder):
    from rag.library import Library

    return Library(tmp_path / "index")


# ------------------------------------------------------------------ a real PostgreSQL: tests/pg_server.py (the
# session's server is the `pg` fixture of tests/conftest.py, one per test process for every folder)
from pg_server import PgServer, start_pg  # noqa: E402,F401  (start_pg: a server of one's own, for the fault tests)


@pytest.fixture(params=["embedded", "postgresql"])
def any_library(request, tmp_path, embedder):
    """A fresh library on each backend (the same tests run over both)."""
    from rag.library import Library

    if request.param == "embedded":
        lib = Library(tmp_path / "index")
    else:
        lib = Library(request.getfixturevalue("pg").database())
    yield lib
    lib.backend.close()
