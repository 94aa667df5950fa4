"""Fixtures for tests against a real Foundry Local service started by scripts/foundry_local.py
(see foundry_support.Launcher): own HOME and data folder, free loopback port, stopped afterwards."""
from __future__ import annotations

from pathlib import Path

import pytest

from foundry_support import Launcher, free_port


@pytest.fixture(scope="session")
def model_dir(smollm2_dir) -> Path:
    """The real SmolLM2-135M-Instruct int8 build (tests/conftest.py fails naming `make models` if absent)."""
    return smollm2_dir


@pytest.fixture(scope="session")
def foundry_service(tmp_path_factory, model_dir):
    """The real Foundry Local service with SmolLM2, shared by the session."""
    launcher = Launcher(root=tmp_path_factory.mktemp("foundry-session"), model_dir=model_dir,
                        port=free_port())
    launcher.start()
    yield launcher
    code = launcher.stop()
    assert code == 0, f"launcher did not stop cleanly on SIGTERM (exit {code})"
    assert not launcher.state_file.exists(), "launcher left its state file behind"


@pytest.fixture
async def engine(foundry_service):
    from engines.foundry.engine import FoundryEngine

    eng = FoundryEngine(base_url=foundry_service.base_url, model=foundry_service.model,
                        first_byte_timeout=120)
    yield eng
    await eng.aclose()
