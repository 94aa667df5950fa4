"""One real API server (`python -m rag serve`, see api_server.py) for the whole tests/api run."""
from __future__ import annotations

import pytest

import api_server as support


@pytest.fixture(scope="session")
def api_server(tmp_path_factory, smollm2_dir, tiny_model_dir):
    server = support.start(tmp_path_factory.mktemp("api"))
    try:
        yield server
    finally:
        server.stop()
