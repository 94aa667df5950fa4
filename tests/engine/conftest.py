"""Engines for the engine tests: one shared worker per model for the whole session (as in the app)."""
from __future__ import annotations

import asyncio

import pytest

from engines.onnx.engine import OnnxGenaiEngine
from rag.config import settings


def _engine(path) -> OnnxGenaiEngine:
    """Configured as the app configures it, with ``path`` as the default model."""
    return OnnxGenaiEngine(**{**settings().engine_config("onnx"), "default_model": str(path)})


@pytest.fixture(scope="session")
def smollm2_engine(smollm2_dir):
    engine = _engine(smollm2_dir)
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    engine = _engine(tiny_model_dir)
    yield engine
    asyncio.run(engine.aclose())


