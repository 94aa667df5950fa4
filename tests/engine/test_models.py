"""Model provisioning and lookup: engines.onnx.models and `python -m rag models`
(no builds here: `make models` does them)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines.base import GenerationOptions, ModelNotFound
from engines.onnx import models
from engines.onnx.engine import OnnxGenaiEngine
from rag.config import REPO_ROOT, settings


@pytest.fixture
def env(monkeypatch):
    """Change LRC_* variables for one test (settings() reads them when called)."""
    yield monkeypatch
    monkeypatch.undo()


def catalog() -> models.ModelCatalog:
    """The models the app sees with the environment as it is now."""
    return models.ModelCatalog(**settings().catalog_config())


def cli(*args, extra_env=None, timeout=60):
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "rag", "models", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_provisioned_models_are_listed(smollm2_dir, tiny_model_dir):
    listed = {m.id: m for m in catalog().list_local_models()}
    assert listed[smollm2_dir.name].path == str(smollm2_dir)
    assert listed[smollm2_dir.name].context_length == 8192
    assert listed[smollm2_dir.name].name == "SmolLM2-135M-Instruct (int8)"
    assert tiny_model_dir.name in listed
    assert catalog().resolve("smollm2") == smollm2_dir == catalog().resolve(smollm2_dir.name)
    assert catalog().resolve(str(tiny_model_dir)) == tiny_model_dir
    assert (smollm2_dir / models.INFO_FILE).is_file()  # written by pull after verification


def test_default_model_prefers_smollm2_and_honours_lrc_model(env, smollm2_dir, tiny_model_dir):
    env.delenv("LRC_MODEL", raising=False)
    assert catalog().default_model() == smollm2_dir.name
    env.setenv("LRC_MODEL", "tiny")
    assert catalog().resolve(None) == tiny_model_dir


async def test_bring_your_own_model_folder(env, tmp_path, tiny_model_dir):
    mine = tmp_path / "byo" / "my-own-model"
    mine.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():  # any folder with genai_config.json is a model
        (mine / f.name).symlink_to(f)
    env.setenv("LRC_MODELS", str(tmp_path / "byo"))
    info = [m for m in catalog().list_local_models() if m.id == "my-own-model"]
    assert info and info[0].path == str(mine) and info[0].context_length == 8192
    assert catalog().resolve("my-own-model") == mine
    engine = OnnxGenaiEngine(**settings().engine_config("onnx"))
    try:
        assert "my-own-model" in [m.id for m in await engine.list_models()]
        gen = engine.stream([{"role": "user", "content": "hi"}], GenerationOptions(max_new_tokens=4),
                            model="my-own-model")
        assert "".join([p async for p in gen]) and gen.usage.completion_tokens == 4
    finally:
        await engine.aclose()


def test_missing_model_names_the_pull_command(env, tmp_path):
    env.setenv("LRC_CACHE_DIR", str(tmp_path / "empty-cache"))
    env.delenv("LRC_MODELS", raising=False)
    env.delenv("LRC_MODEL", raising=False)
    assert catalog().list_local_models() == []
    with pytest.raises(ModelNotFound) as info:
        catalog().resolve(None)
    assert "python -m rag models pull smollm2" in info.value.user_text()
    with pytest.raises(ModelNotFound, match="not an ONNX Runtime GenAI model folder"):
        catalog().resolve(str(tmp_path))
    with pytest.raises(ModelNotFound) as info:
        catalog().require("tiny")
    assert "make test-models" in info.value.user_text()


def test_cli_lists_and_skips_what_is_there(smollm2_dir, tiny_model_dir):
    listed = cli()
    assert listed.returncode == 0, listed.stderr
    assert smollm2_dir.name in listed.stdout and tiny_model_dir.name in listed.stdout
    assert cli("path", "tiny").stdout.strip() == str(tiny_model_dir)
    start = time.monotonic()
    again = cli("pull", "tiny")
    assert again.returncode == 0 and "already provisioned" in again.stdout
    assert time.monotonic() - start < 20


def test_phi_pull_offline_fails_at_once(tmp_path, free_port):
    start = time.monotonic()
    done = cli("pull", "phi-4-mini", extra_env={"HF_ENDPOINT": f"http://127.0.0.1:{free_port}",
                                                "LRC_CACHE_DIR": str(tmp_path)})
    assert time.monotonic() - start < 15
    assert done.returncode == 1
    assert "not reachable" in done.stderr and "LRC_MODELS" in done.stderr
    assert not (tmp_path / "models" / "phi-4-mini-instruct-cpu-int4").exists()


def test_unknown_pull_name_is_a_clear_error():
    done = cli("pull", "gpt-17")
    assert done.returncode == 1 and "No recipe for 'gpt-17'" in done.stderr and "smollm2" in done.stderr
