"""Fixtures for the answer tests: the real embedding model (loaded once per session)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedder():
    from rag.embedder import Embedder

    return Embedder.get()
