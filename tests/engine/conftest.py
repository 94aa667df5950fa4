"""Engines for the engine tests: one shared worker per model for the whole session (as in the app)."""
from __future__ import annotations

import asyncio

import pytest

from engines.onnx_genai import OnnxGenaiEngine


def _engine(path) -> OnnxGenaiEngine:
    return OnnxGenaiEngine(model=str(path))


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


