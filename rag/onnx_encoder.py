"""The embedding model on ONNX Runtime: the vectors sentence-transformers computes (within 2e-7 on the
default model), without importing torch. A process that embeds then starts with 0.3 s of CPU instead
of about 6 (importing sentence-transformers pulls in torch, transformers, scikit-learn and scipy), and a
query is encoded in half the time (docs/BENCHMARKS.md, "The embedder on ONNX Runtime").

The model's transformer is exported once, with torch, from the same weights, into the cache folder
(``onnx_file``: one file per model folder and weights; written atomically, so processes that export at
the same moment do not clash). The tokenizer is the model's own ``tokenizer.json`` (the Rust tokenizers,
as sentence-transformers uses it); pooling (mean or CLS, per the model's pooling config) and
normalisation are done here. A model whose layout this does not reproduce (another pooling, extra layers,
no tokenizer.json) raises ``Unsupported``: rag.embedder then loads it with sentence-transformers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import cpu_threads

_log = logging.getLogger(__name__)
# the sentence-transformers modules whose work this file reproduces
_TRANSFORMER, _POOLING, _NORMALIZE = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                                      "sentence_transformers.models.Normalize")


class Unsupported(Exception):
    """The model's layout is not one this runtime reproduces; the message says what differs."""


@dataclass(frozen=True)
class Layout:
    folder: Path
    max_tokens: int  # the window, special tokens included (sentence-transformers' max_seq_length)
    dim: int
    pooling: str  # "mean" or "cls"
    weights: Path


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def layout(model_path: str) -> Layout:
    """What the model folder holds, if this runtime can reproduce it."""
    folder = Path(model_path)
    modules = folder / "modules.json"
    if not modules.is_file() or not (folder / "tokenizer.json").is_file():
        raise Unsupported(f"{folder} is not a sentence-transformers folder with a tokenizer.json")
    kinds = [m.get("type", "") for m in _read(modules)]
    if not kinds or kinds[0] != _TRANSFORMER or any(k not in (_POOLING, _NORMALIZE) for k in kinds[1:]) \
            or kinds.count(_POOLING) != 1:
        raise Unsupported(f"modules {kinds}: only a transformer, its pooling and a normalisation are reproduced")
    pool_dir = next(folder / m["path"] for m in _read(modules) if m.get("type") == _POOLING)
    pool = _read(pool_dir / "config.json")
    modes = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v is True]
    mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(modes[0]) if len(modes) == 1 else None
    if mode is None:
        raise Unsupported(f"pooling {modes}: only mean or CLS pooling is reproduced")
    st_cfg = folder / "sentence_bert_config.json"
    max_tokens = int((_read(st_cfg) if st_cfg.is_file() else {}).get("max_seq_length") or 0)
    config = _read(folder / "config.json")
    if not max_tokens:
        max_tokens = int(config.get("max_position_embeddings", 512))
    weights = next((folder / f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()), None)
    if weights is None:
        raise Unsupported(f"no model.safetensors or pytorch_model.bin in {folder}")
    return Layout(folder, max_tokens, int(pool.get("word_embedding_dimension") or config["hidden_size"]), mode, weights)


def onnx_file(cache_dir: Path, lay: Layout) -> Path:
    """Where the export of this model folder and these weights lives."""
    st = lay.weights.stat()
    key = hashlib.sha1(f"{lay.folder.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    name = f"{lay.folder.parent.name}-{lay.folder.name}" if lay.folder.name == "model" else lay.folder.name
    return Path(cache_dir) / "embedders" / f"{name}-{key}" / "model.onnx"


def export(lay: Layout, dest: Path) -> Path:
    """Write the model's transformer (token ids -> last hidden states) to ``dest`` as ONNX. Needs torch and
    transformers (a few seconds, once per model)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base = AutoModel.from_pretrained(str(lay.folder))
    base.eval()
    with_types = int(getattr(base.config, "type_vocab_size", 0) or 0) > 0

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    sample = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names + ["hidden"]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=dest.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing: nothing a user can act on
            torch.onnx.export(Hidden(base), sample, tmp, input_names=names, output_names=["hidden"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load(model_path: str, cache_dir: Path, force: bool = False) -> "OnnxEncoder":
    """The model at ``model_path`` on ONNX Runtime: its export in ``cache_dir`` (made now when missing, or
    again with ``force``). Raises ``Unsupported`` for a layout this does not reproduce."""
    lay = layout(model_path)
    target = onnx_file(cache_dir, lay)
    if force or not target.is_file():
        _log.info("exporting the embedding model %s to ONNX (once): %s", model_path, target)
        export(lay, target)
    return OnnxEncoder(lay, target)


class OnnxEncoder:
    """Normalised sentence vectors from an exported model. A single text (a query) runs on one thread (no
    thread start-up for a few milliseconds of work); batches on ``cpu_threads()``."""

    def __init__(self, lay: Layout, model_file: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.layout = lay
        self.file = model_file
        self._ort = ort
        self.tokenizer = Tokenizer.from_file(str(lay.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(lay.max_tokens)
        self.tokenizer.no_padding()
        self._one = self._session(1)
        self._many = None
        self.inputs = {i.name for i in self._one.get_inputs()}

    def _session(self, threads: int):
        opts = self._ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # no busy-waiting between operators: on a shared 2-core machine the other work needs the cycles
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self._ort.InferenceSession(str(self.file), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        encs = self.tokenizer.encode_batch(list(texts))
        session = self._one
        if len(texts) > 4 and cpu_threads() > 1:
            if self._many is None:
                self._many = self._session(cpu_threads())
            session = self._many
        # longest first, as sentence-transformers batches: each batch is padded to its longest text
        order = np.argsort([-len(e.ids) for e in encs], kind="stable")
        out = np.zeros((len(texts), self.layout.dim), dtype=np.float32)
        for start in range(0, len(texts), max(1, batch_size)):
            rows = order[start:start + batch_size]
            width = max(len(encs[j].ids) for j in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, j in enumerate(rows):
                n = len(encs[j].ids)
                ids[r, :n] = encs[j].ids
                mask[r, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feed)[0]
            if self.layout.pooling == "cls":
                vecs = hidden[:, 0, :]
            else:
                m = mask[..., None].astype(np.float32)
                vecs = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            out[rows] = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return out
