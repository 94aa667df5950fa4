"""The document library: the facade over the store, the embedder, the search index and the ingester.

``Library`` owns the store (SQLite: vectors, chunk metadata, manifest), the embedder, the search
index in memory (``LiveIndex``: FAISS + BM25 from ``rag.search``, kept current with the store) and
the ``Ingester`` (``rag.ingest``). ``ingest`` and ``remove`` are synchronous and thread-safe (one
writer at a time); ``search`` may run in any number of threads, also while an ingest runs. Call
them from a worker thread in async code (``asyncio.to_thread``): they do CPU work.

Public surface: ``shared()``, ``load()``, ``ingest()`` (``force``: a re-index), ``resume()``, ``retrieve()``,
``search()``, ``remove()``, ``stats()``, ``files()``, ``pending()``, ``display_name()``, ``chunk_tokens()``;
the bundled user guide (``settings().docs_corpus``): ``guide_files()``, ``guide_missing()``,
``guide_present()``, ``guide_removed()`` (a removal of any of its files is remembered); for tests and
benchmarks also the parts themselves: ``store``, ``embedder``, ``chunker``, ``ingester``,
``search_index``.
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
from rag.embedder import DEFAULT_MODEL, Embedder
from rag.ingest import Ingester, IngestProgress, IngestReport
from rag.ingest.ingester import expand, unchanged
from rag.ingest.chunking import Chunker
from rag.schema import Hit, Mode, Retrieval
from rag.search import MIN_DENSE_SCORE, Added, Reranker, RerankerError, SearchIndex, is_relevant
from rag.search import rerank as rerank_hits
from rag.store import FileCommit, FileEntry, Store

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


class LiveIndex:
    """The search index in memory, kept current with the store: every write goes to the store
    and, in the same step, to memory; a write made by another process (the store's generation
    moved) makes it read everything again. Implements ``rag.ingest.IndexWriter``."""

    def __init__(self, store: Store, embedder: Callable[[], Embedder], embed_model: str):
        self.store = store
        self._embedder = embedder
        self.embed_model = embed_model
        self._lock = threading.RLock()
        self.search: SearchIndex | None = None  # None until the first load()

    def model_known(self) -> bool:
        """The store's vectors come from the configured model (by name: no model load needed)."""
        stored = self.store.model_id() or ""
        return bool(stored) and stored.split("|", 1)[0] == (self.embed_model or DEFAULT_MODEL).strip()

    def ensure_model(self) -> None:
        if self.search is None and not self.model_known():
            self.load()  # a new index or another model: check (and rebuild) before planning

    def load(self) -> None:
        """Model checked (a different model than the stored vectors' -> rebuild) and memory current."""
        with self._lock:
            if self.search is None:
                embedder = self._embedder()
                if self.store.model_id() != embedder.model_id:
                    self.store.set_model(embedder.model_id)
                self.search = SearchIndex(embedder.dim)
            if self.search.generation is None or self.store.generation() != self.search.generation:
                self._reload()

    def _reload(self) -> None:
        self.search.load(*self.store.load_all(self.search.dim))

    def commit(self, commits: list[FileCommit]) -> None:
        with self._lock:
            _, after, removed, added = self.store.commit(commits)
            self._apply(after, removed, [_added(c, ids) for c, (ids, _) in zip(commits, added)])

    def remove(self, paths: list[str]) -> int:
        """Drop files from the store and memory. Returns the number of chunks removed."""
        with self._lock:
            _, after, removed = self.store.remove(paths)
            self._apply(after, removed, [])
            return len(removed)

    def _apply(self, generation: int, removed: list[int], added: list[Added]) -> None:
        self.search.apply(generation, removed, added)
        if self.search.generation != generation:  # another process wrote meanwhile: read everything again
            self._reload()

    def rank(self, query_vec, query: str, k: int, mode: Mode, allowed=None) -> list[tuple[int, float, dict]]:
        self.load()
        return self.search.rank(query_vec, query, k, mode, allowed)


def _added(commit: FileCommit, ids: list[int]) -> Added:
    arr = np.asarray(ids, dtype=np.int64)
    owners = np.repeat(arr, [len(d.vector_texts) for d in commit.drafts])
    return Added(ids=arr, owners=owners, vectors=commit.vectors, texts=[d.embed_text for d in commit.drafts])


class Library:
    _shared: "Library | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, index_dir: Path | str, embed_model: str | None = None, max_file_mb: float | None = None,
                 batch_chunks: int | None = None, reranker: str | None = None, rerank_depth: int | None = None):
        self.index_dir = Path(index_dir).expanduser()
        # optional cross-encoder stage (rag.search.reranker); "" = off, None = from settings (LRC_RERANKER)
        self.reranker = settings().reranker if reranker is None else reranker
        self.rerank_depth = settings().rerank_depth if rerank_depth is None else int(rerank_depth)
        self.store = Store(self.index_dir)
        self.embed_model = embed_model or DEFAULT_MODEL
        self.max_file_mb = 50.0 if max_file_mb is None else float(max_file_mb)
        self._writer = threading.Lock()
        get_embedder = functools.partial(Embedder.get, self.embed_model)
        self._live = LiveIndex(self.store, get_embedder, self.embed_model)
        self.ingester = Ingester(self.store, self._live, get_embedder, self.max_file_mb, batch_chunks)

    @classmethod
    def shared(cls) -> "Library":
        """The process-wide library from ``rag.config.settings()`` (created on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                s = settings()
                cls._shared = cls(s.index_dir, s.embed_model, s.max_file_mb)
            return cls._shared

    # ------------------------------------------------------------------ parts
    @property
    def embedder(self) -> Embedder:
        return Embedder.get(self.embed_model)

    @property
    def chunker(self) -> Chunker:
        return self.ingester.chunker

    @property
    def search_index(self) -> SearchIndex | None:
        """The in-memory search structures (None until ``load``)."""
        return self._live.search

    def load(self) -> None:
        """Load the embedding model and bring the in-memory index up to date with the store (a
        different model than the stored vectors' empties the index for a rebuild). Every other
        method does this when it needs to; call it to pay the cost up front."""
        self._live.load()

    # ------------------------------------------------------------------ ingest
    def ingest(self, paths: list[Path | str], progress: Callable[[IngestProgress], None] | None = None,
               display_names: dict[str, str] | None = None, force: bool = False) -> IngestReport:
        """Index files and folders. Never raises for a bad file: it is reported in ``failed``.
        ``force``: read and embed the files again even when unchanged (a re-index)."""
        with self._writer:
            report = self.ingester.ingest(paths, progress, display_names, force)
            if (report.added or report.updated) and self.guide_removed() and self.guide_present():
                self.store.set_meta(GUIDE_REMOVED, "")  # the user indexed the guide again: keep it current
            return report

    def resume(self, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Index what an interrupted run (or a change of model) left out."""
        with self._writer:
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
        self.load()
        index = self.search_index
        return index.unknown_terms(text) if index is not None else []

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
        return LibraryStats(files, chunks, missing, self.store.model_id() or "", str(self.index_dir))

    def files(self) -> list[FileEntry]:
        return list(self.store.files().values())

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
