"""`python -m rag compare`: a real command run (subprocess) on a real library built from a small Markdown
file (the real embedder, FAISS and BM25), two real models on the in-process engine (SmolLM2-135M int8
and the tiny random-weight build)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rag.config import REPO_ROOT, offline_env

pytestmark = pytest.mark.slow

GUIDE = """# Zorblax widget calibration

To calibrate a Zorblax widget, hold the blue button for seven seconds until the lamp blinks green,
then turn the dial to position 42. A Zorblax widget must be calibrated every 90 days. If the lamp
blinks red, the widget needs a new quartz crystal before it can be calibrated.
"""


def rag(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def library_env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("compare-cmd")
    docs = root / "docs"
    docs.mkdir()
    (docs / "zorblax.md").write_text(GUIDE)
    env = offline_env({k: v for k, v in os.environ.items() if not k.startswith(("LRC_", "FOUNDRY_"))})
    env["LRC_DATA_DIR"] = str(root / "data")
    done = rag(env, "index", str(docs), "--quiet")
    assert done.returncode == 0 and "1 added" in done.stdout, done.stdout + done.stderr
    return env


def test_compare_prints_the_quote_both_answers_their_figures_and_the_verdict(library_env, smollm2_dir,
                                                                             tiny_model_dir):
    done = rag(library_env, "compare", "How do I calibrate a Zorblax widget?", "--a", "onnx:smollm2",
               "--b", "onnx:tiny", "--max-tokens", "24", "--temperature", "0", "-k", "2")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert out.count("From your documents:") == 1 and "blue button" in out, out
    a, b = out.index("=== Answer A: onnx:smollm2 ==="), out.index("=== Answer B: onnx:tiny ===")
    verdict = out.index("Verdict: ")
    assert out.index("From your documents:") < a < b < verdict, out
    block_a, block_b = out[a:b], out[b:verdict]
    for side, block, model in (("A", block_a, "smollm2"), ("B", block_b, "tiny")):
        figures = re.search(rf"\[{side} · onnx · (\S+) · TTFT (\d+\.\d\d) s · ([\d.]+) tokens/s · (\d+) prompt \+ "
                            rf"(\d+) answer tokens · total ([\d.]+) s\]", block)
        assert figures, block
        assert model in figures.group(1)
        assert int(figures.group(4)) > 0 and 0 < int(figures.group(5)) <= 24, figures.group(0)
        assert "Cited:" in block and "zorblax.md" in block, block  # cited, or the passages it read
        body = block.split("\n", 1)[1].split(f"[{side} · onnx")[0]
        assert body.replace("Cited:", "").strip(), f"answer {side} is empty: {block}"
    assert re.search(r"\d+ vs \d+ answer tokens", out[verdict:]) and "cited" in out[verdict:], out[verdict:]


def test_compare_with_a_bad_choice_exits_2_naming_the_engines(library_env):
    done = rag(library_env, "compare", "How do I calibrate a Zorblax widget?", "--a", "onnx:smollm2",
               "--b", "ollama:llama3", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'ollama:llama3' does not name an engine" in done.stderr
    assert "onnx, foundry" in done.stderr, done.stderr
    assert "Answer A" not in done.stdout
