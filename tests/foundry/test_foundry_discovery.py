"""Finding the endpoint and the model without a service: alias resolution, `foundry service status`
output, the launcher's state file."""
from __future__ import annotations

import json
import os

import pytest

from engines.foundry.discovery import parse_service_status, read_state_file, resolve_alias

pytestmark = pytest.mark.foundry


def test_alias_resolution():
    ids = ["Phi-4-mini-reasoning-generic-cpu:2", "Phi-4-mini-instruct-generic-gpu:5",
           "Phi-4-mini-instruct-generic-cpu:5", "Phi-4-mini-instruct-generic-cpu:4", "qwen2.5-0.5b-instruct-generic-cpu:4"]
    assert resolve_alias("phi-4-mini", ids) == "Phi-4-mini-instruct-generic-cpu:5"
    assert resolve_alias("Phi-4-mini-instruct-generic-cpu:4", ids) == "Phi-4-mini-instruct-generic-cpu:4"
    assert resolve_alias("phi-4-mini-instruct-generic-cpu", ids) == "Phi-4-mini-instruct-generic-cpu:5"
    assert resolve_alias("qwen2.5-0.5b", ids) == "qwen2.5-0.5b-instruct-generic-cpu:4"
    assert resolve_alias("llama", ids) is None


def test_service_status_parsing():
    out = "🟢 Model management service is running on http://127.0.0.1:56051/openai/status\n"
    assert parse_service_status(out) == "http://127.0.0.1:56051/v1"
    assert parse_service_status("🔴 Model management service is not running!") is None


def test_state_file_of_a_dead_launcher_is_ignored(tmp_path):
    path = tmp_path / "foundry.json"
    path.write_text(json.dumps({"base_url": "http://127.0.0.1:1/v1", "model": "m:1", "pid": 999999999}))
    assert read_state_file(path) is None
    path.write_text(json.dumps({"base_url": "http://127.0.0.1:1/v1", "model": "m:1", "pid": os.getpid()}))
    assert read_state_file(path)["model"] == "m:1"


def test_unreadable_state_file_is_ignored(tmp_path):
    path = tmp_path / "foundry.json"
    assert read_state_file(path) is None
    path.write_text("{not json")
    assert read_state_file(path) is None
