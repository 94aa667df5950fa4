"""Settings are read when used: a changed environment variable is seen by the next call, with no
module reloaded; names and defaults are the documented ones."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.config import OFFLINE_ENV, Settings, offline_env, settings
from rag.schema import Mode


def test_a_changed_variable_is_seen_without_reloading(monkeypatch):
    monkeypatch.setenv("LRC_TOP_K", "7")
    assert settings().top_k == 7
    monkeypatch.setenv("LRC_TOP_K", "3")
    assert settings().top_k == 3
    monkeypatch.delenv("LRC_TOP_K")
    assert settings().top_k == 10


def test_pipeline_options_follow_the_environment(monkeypatch):
    from rag.pipeline import Options

    monkeypatch.setenv("LRC_RETRIEVAL_MODE", "dense")
    monkeypatch.setenv("LRC_MAX_NEW_TOKENS", "99")
    opts = Options().normalised()
    assert opts.mode == Mode.DENSE and opts.max_new_tokens == 99


def test_empty_means_default_and_types_are_parsed(monkeypatch):
    monkeypatch.setenv("LRC_DENSE_WEIGHT", "")
    monkeypatch.setenv("LRC_PAUSE_LOADERS", "0")
    monkeypatch.setenv("LRC_MODELS", os.pathsep.join(["~/a", "/b"]))
    monkeypatch.setenv("FOUNDRY_CONNECT_TIMEOUT", "5.5")
    s = settings()
    assert s.dense_weight == 0.8
    assert s.pause_loaders is False
    assert s.extra_models == [Path("~/a").expanduser(), Path("/b")]
    assert s.foundry_connect_timeout == 5.5


def test_paths_follow_data_and_cache_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LRC_CACHE_DIR", str(tmp_path / "c"))
    s = settings()
    assert s.index_dir == tmp_path / "d" / "index"
    assert s.models_dir == tmp_path / "c" / "models"
    assert s.engine_config("foundry")["state_file"] == tmp_path / "c" / "foundry.json"
    assert s.engine_config("onnx")["models_dir"] == tmp_path / "c" / "models"


def test_engine_threads_default_to_the_cores_or_omp_num_threads(monkeypatch):
    """LRC_ENGINE_THREADS=0 (the default): OMP_NUM_THREADS when set, else the machine's cores; a number wins."""
    monkeypatch.delenv("LRC_ENGINE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert settings().engine_config("onnx")["threads"] == max(1, os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert settings().engine_config("onnx")["threads"] == 1
    monkeypatch.setenv("LRC_ENGINE_THREADS", "3")
    assert settings().engine_config("onnx")["threads"] == 3


def test_a_bad_value_is_a_readable_error(monkeypatch):
    monkeypatch.setenv("LRC_TOP_K", "many")
    with pytest.raises(ValidationError, match="LRC_TOP_K"):
        Settings()


def test_mode_enum_parses_and_lists_choices():
    assert Mode.parse(" Lexical ") is Mode.LEXICAL
    assert Mode.values(search_only=True) == ["hybrid", "dense", "lexical"]
    with pytest.raises(ValueError, match="use one of: hybrid, dense, lexical"):
        Mode.parse("off", search_only=True)


def test_offline_env_is_set_once_and_respects_explicit_values():
    env = offline_env({"HF_HUB_OFFLINE": "0"})
    assert env["HF_HUB_OFFLINE"] == "0"
    assert all(env[k] == v for k, v in OFFLINE_ENV.items() if k != "HF_HUB_OFFLINE")
    import rag  # noqa: F401  (importing the package sets them for this process)

    assert os.environ.get("TRANSFORMERS_OFFLINE")
