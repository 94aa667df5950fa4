"""The document library: the facade over the store, the embedder, the search index and the ingester.

``Library`` owns a backend (``rag.backends``: where passages, vectors and the manifest live and how
they are searched; the embedded default is ``LiveIndex``: SQLite with FAISS + BM25 in memory, kept
current with the store; ``LRC_STORE=postgresql://...`` keeps everything in PostgreSQL, shared by
several app instances), the embedder and the ``Ingester`` (``rag.ingest``). ``ingest`` and ``remove`` are synchronous and thread-safe (one
writer at a time); ``search`` may run in any number of threads, also while an ingest runs. Call
them from a worker thread in async code (``asyncio.to_thread``): they do CPU work.

Public surface: ``shared()``, ``load()``, ``ingest()`` (``force``: a re-index; ``owner``: a user's chat
upload, recorded in the store: ``rag.owners``), ``resume()``, ``retrieve()``, ``search()``, ``remove()``,
``stats()``, ``files()``, ``owners()``, ``pending()``, ``display_name()``, ``chunk_tokens()``;
the bundled user guide (``settings().docs_corpus``): ``guide_files()``, ``guide_missing()``,
``guide_present()``, ``guide_removed()`` (a removal of any of its files is remembered); for tests and
benchmarks also the parts themselves: ``store``, ``embedder``, ``chunker``, ``ingester``,
``search_index`` (embedded only), ``backend``. Storage errors are ``rag.store.StoreError``s (a database
that cannot be reached, a timeout, a shared library of another model) with a sentence to show.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.config import settings
from rag.owners import under
from rag.backends import Backend, is_database, open_backend
from rag.backends.embedded import LiveIndex
from rag.embedder import DEFAULT_MODEL, Embedder
from rag.ingest import Ingester, IngestProgress, IngestReport
from rag.ingest.ingester import expand, unchanged
from rag.ingest.chunking import Chunker
from rag.schema import Hit, Mode, Retrieval
from rag.search import MIN_DENSE_SCORE, Reranker, RerankerError, SearchIndex, is_relevant
from rag.search import rerank as rerank_hits
from rag.store import FileEntry, StoreError

__all__ = ["Library", "LibraryStats", "LiveIndex", "IngestProgress", "IngestReport", "GUIDE_REMOVED"]

GUIDE_REMOVED = "guide_removed"  # meta key: a file of the bundled guide was removed on purpose (its path)


@dataclass
class LibraryStats:
    files: int
    chunks: int
    missing: list[str]  # files a run planned but an interrupted run left out (re-run to complete)
    model: str = ""
    index_dir: str = ""

    def summary(self) -> str:
        s = f"{self.files} files, {self.chunks} chunks, model {self.model or '(none yet)'}"
        if self.missing:
            s += f"; {len(self.missing)} file(s) missing from an interrupted run"
        return s


class Library:
    _shared: "dict[tuple, Library]" = {}  # its configuration (``shared_config``) -> the library made with it
    _shared_lock = threading.Lock()

    def __init__(self, index_dir: Path | str, embed_model: str | None = None, max_file_mb: float | None = None,
                 batch_chunks: int | None = None, reranker: str | None = None, rerank_depth: int | None = None):
        """``index_dir``: the embedded library's folder, or a PostgreSQL URI (``rag.backends``)."""
        self.index_dir = str(index_dir) if is_database(index_dir) else Path(index_dir).expanduser()
        # optional cross-encoder stage (rag.search.reranker); "" = off, None = from settings (LRC_RERANKER)
        self.reranker = settings().reranker if reranker is None else reranker
        self.rerank_depth = settings().rerank_depth if rerank_depth is None else int(rerank_depth)
        self.embed_model = embed_model or DEFAULT_MODEL
        self.max_file_mb = 50.0 if max_file_mb is None else float(max_file_mb)
        self._writer = threading.Lock()
        get_embedder = functools.partial(Embedder.get, self.embed_model)
        self._live: Backend = open_backend(self.index_dir, self.embed_model, get_embedder)
        self.store = self._live.store
        self.ingester = Ingester(self.store, self._live, get_embedder, self.max_file_mb, batch_chunks)

    @staticmethod
    def shared_config() -> tuple:
        """What the shared library is made with, from ``rag.config.settings()``: (store or index folder,
        embedding model, max file size, reranker, rerank depth)."""
        s = settings()
        return s.library_location, s.embed_model, float(s.max_file_mb), s.reranker, int(s.rerank_depth)

    @classmethod
    def shared(cls) -> "Library":
        """The process-wide library for the current settings (``shared_config``), created on first use
        with them; changed settings give the library made for those (like ``engines.registry.get``)."""
        key = cls.shared_config()
        with cls._shared_lock:
            if key not in cls._shared:
                where, model, max_mb, reranker, depth = key
                cls._shared[key] = cls(where, model, max_mb, reranker=reranker, rerank_depth=depth)
            return cls._shared[key]

    # ------------------------------------------------------------------ parts
    @property
    def embedder(self) -> Embedder:
        return Embedder.get(self.embed_model)

    @property
    def chunker(self) -> Chunker:
        return self.ingester.chunker

    @property
    def search_index(self) -> SearchIndex | None:
        """The in-memory search structures (None until ``load``, and always with PostgreSQL)."""
        return getattr(self._live, "search", None)

    @property
    def backend(self) -> Backend:
        return self._live

    def load(self) -> None:
        """Load the embedding model and bring the in-memory index up to date with the store (a
        different model than the stored vectors' empties the index for a rebuild). Every other
        method does this when it needs to; call it to pay the cost up front."""
        self._live.load()

    # ------------------------------------------------------------------ ingest
    def ingest(self, paths: list[Path | str], progress: Callable[[IngestProgress], None] | None = None,
               display_names: dict[str, str] | None = None, force: bool = False,
               owner: str | None = None) -> IngestReport:
        """Index files and folders. Never raises for a bad file: it is reported in ``failed``.
        ``force``: read and embed the files again even when unchanged (a re-index). ``owner``: the user
        whose chat upload these files are (only they see them); None keeps each file's recorded owner,
        and a new file is shared."""
        with self._writer:
            report = self.ingester.ingest(paths, progress, display_names, force, owner)
            try:
                if (report.added or report.updated) and self.guide_removed() and self.guide_present():
                    self.store.set_meta(GUIDE_REMOVED, "")  # the user indexed the guide again: keep it current
            except StoreError:
                pass  # the database went away during the run: the report says what was not saved
            return report

    def resume(self, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Index what an interrupted run (or a change of model) left out."""
        with self._writer:
            return self.ingester.resume(progress)

    def rebuild(self, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Embed the whole library again with the configured model (a shared library made with another
        model: on request only, see ``rag.store.ModelMismatch``)."""
        with self._writer:
            self._live.rebuild()
            return self.ingester.resume(progress)

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int = 4, mode: Mode | str = Mode.HYBRID, rerank: bool = True,
               scope: Sequence[str] | None = None) -> list[Hit]:
        """Top-k chunks for a question. mode: "hybrid" (default), "dense" or "lexical". ``scope``: search
        only these files (indexed paths; None = the whole library). With a re-ranker configured (and
        ``rerank``), it re-orders the top ``rerank_depth`` candidates (raises ``RerankerError`` when it
        cannot be loaded)."""
        mode = Mode.parse(mode, search_only=True)
        if not query or not query.strip():
            return []
        self.load()
        qv = self.embedder.encode_query(query) if mode != Mode.LEXICAL else None
        reranker = Reranker.get(self.reranker) if (rerank and self.reranker and k > 0) else None
        allowed = None if scope is None else np.asarray(self.store.chunk_ids([str(p) for p in scope]), dtype=np.int64)
        ranked = self._live.rank(qv, query, max(k, self.rerank_depth) if reranker else k, mode, allowed)
        chunks = self.store.chunks([i for i, _, _ in ranked])
        hits = []
        for i, score, scores in ranked:
            ch = chunks.get(i)
            if ch is not None:
                hits.append(Hit(chunk=ch, score=score, rank=len(hits) + 1, scores=scores))
        return rerank_hits(reranker, query, hits, k)

    def retrieve(self, question: str, k: int = 4, mode: Mode | str = Mode.HYBRID,
                 min_score: float | None = None, scope: Sequence[str] | None = None) -> Retrieval:
        """What a chat needs before answering: the top-k hits (from the ``scope`` files only, when
        given), whether the library is empty, and whether any hit is about the question
        (``rag.search.is_relevant`` at ``min_score``, None = its default threshold). A re-ranker that
        cannot be used is a notice, not an error: the ranking without it is returned."""
        mode = Mode.parse(mode, search_only=True)
        if not self.store.counts()[1]:
            return Retrieval([], library_empty=True)
        notices: list[str] = []
        try:
            hits = self.search(question, k, mode, scope=scope)
        except RerankerError as err:  # a misconfigured optional stage: say so, rank without it
            notices.append(f"{err} This answer uses the ranking without the re-ranker.")
            hits = self.search(question, k, mode, rerank=False, scope=scope)
        threshold = MIN_DENSE_SCORE if min_score is None else min_score
        return Retrieval(hits, relevant=is_relevant(hits, mode, threshold), notices=notices)

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of ``text`` (as BM25 reads them) that no passage of the library holds."""
        return self._live.unknown_terms(text)

    # ------------------------------------------------------------------ manage
    def remove(self, path) -> int:
        """Remove a file (or every file under a folder) from the index. Returns chunks removed.
        Removing a file of the bundled guide is remembered (``guide_removed``): it is not added back."""
        p = Path(path).expanduser()
        key = str(p.resolve()) if p.exists() else str(p.absolute())
        prefix = key.rstrip("/") + "/"
        with self._writer:
            self.load()
            known = self.store.files()
            targets = [k for k in known if k == key or k.startswith(prefix)]
            if not targets:  # a display name or a bare file name
                targets = [k for k, e in known.items() if str(path) in (e.display_name, Path(k).name)]
            pend = [k for k in self.store.pending() if k == key or k.startswith(prefix)]
            if not targets and not pend:
                return 0
            guide = [t for t in targets + pend if under(t, settings().docs_corpus)]
            if guide:
                self.store.set_meta(GUIDE_REMOVED, guide[0])
            return self._live.remove(targets + pend)

    def stats(self) -> LibraryStats:
        files, chunks = self.store.counts()
        missing = [p for p in self.store.pending() if p not in self.ingester.running]
        return LibraryStats(files, chunks, missing, self.store.model_id() or "", self._live.location)

    def files(self) -> list[FileEntry]:
        return list(self.store.files().values())

    def owners(self) -> dict[str, str]:
        """Path -> owner of the files that are a user's upload (``rag.owners``); the others are shared."""
        return self.store.owners()

    def pending(self) -> list[str]:
        """Files a run planned and has not finished (what an interrupted run left out)."""
        return self.store.pending()

    def chunk_tokens(self) -> list[int]:
        """Word pieces of every stored chunk (what was embedded, prefix included)."""
        return self.store.chunk_tokens()

    # ------------------------------------------------------------------ the bundled user guide
    def guide_files(self) -> list[str]:
        """The files of the bundled guide (``settings().docs_corpus``) that can be indexed."""
        corpus = settings().docs_corpus
        return [str(f) for f in expand([corpus])[0]] if corpus.is_dir() else []

    def guide_removed(self) -> bool:
        """A file of the guide was removed from this library on purpose (not added back by itself until
        the user indexes the whole guide again)."""
        return bool(self.store.meta(GUIDE_REMOVED))

    def guide_missing(self) -> list[str]:
        """Guide files to index: not in the library, or changed since (size or mtime). None once the
        user removed a guide file."""
        if self.guide_removed():
            return []
        known = self.store.files()
        return [f for f in self.guide_files() if not unchanged(known.get(f), Path(f).stat())]

    def guide_present(self) -> bool:
        """Every file of the guide is in the library (so questions about the app can be answered)."""
        files = self.guide_files()
        known = self.store.files()
        return bool(files) and all(f in known for f in files)

    def display_name(self, path: str) -> str:
        e = self.store.files().get(path)
        return e.name if e else Path(path).name
