"""The document library: one writer, many readers, over the persistent store.

``Library`` owns the store (SQLite: vectors, chunk metadata, manifest), the embedder and the
in-memory search structures (FAISS + BM25). ``ingest`` is synchronous and thread-safe (one
writer at a time); ``search`` may run in any number of threads, also while an ingest runs.
Call both from a worker thread in async code (``asyncio.to_thread``): they do CPU work.

Ingest: files and folders (recursive) -> unchanged files are skipped by size+mtime, then by
content hash (nothing is embedded for them) -> loader processes (``rag/ingest_worker.py``; a
background thread for small runs of text files) load and chunk the next files while the calling
thread embeds chunks in large batches; the processes are stopped while the model computes, so
pypdf never competes with torch for the 2 cores (what keeps ingest close to the bare model's
throughput) -> each batch of files is committed in one transaction. Files planned
but not yet committed are recorded as pending, so an interrupted run says what it left out and
a re-run (or ``resume()``) completes it.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag import ingest_worker, loaders
from rag.chunking import Chunker
from rag.config import settings
from rag.embedder import DEFAULT_MODEL, Embedder
from rag.lexical import LexicalIndex
from rag.reranker import Reranker
from rag.retriever import MODES, DenseIndex, rank
from rag.schema import Hit
from rag.store import FileCommit, FileEntry, Store

BATCH_CHUNKS = settings().ingest_batch  # chunks per embedding call / commit
# loader processes (see rag/ingest_worker.py): -1 = one per core up to 2; 0 = load in a thread
LOADER_PROCESSES = settings().ingest_workers
LOADER_NICE = settings().loader_nice
# pause the loader processes (SIGSTOP/SIGCONT) while the model computes a batch: torch's threads
# then have the cores to themselves (see rag/ingest_worker.py for the measurements)
PAUSE_LOADERS = settings().pause_loaders and hasattr(os, "kill") \
    and hasattr(__import__("signal"), "SIGSTOP")


@dataclass
class IngestProgress:
    stage: str  # "loading" | "embedding" | "saving"
    file: str
    done: int  # files finished so far
    total: int  # files in this run


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, readable reason)
    chunks_added: int = 0
    seconds: float = 0.0
    skipped_contents_pages: int = 0
    # where the time went (seconds): waiting for the loaders, embedding, saving (SQLite + FAISS + BM25)
    wait_s: float = 0.0
    embed_s: float = 0.0
    save_s: float = 0.0

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.unchanged)} unchanged",
                 f"{len(self.failed)} failed"]
        return f"{', '.join(parts)}; {self.chunks_added} chunks in {self.seconds:.1f} s"


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


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Library:
    _shared: "Library | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, index_dir: Path | str, embed_model: str | None = None, max_file_mb: float | None = None,
                 batch_chunks: int | None = None, reranker: str | None = None, rerank_depth: int | None = None):
        self.index_dir = Path(index_dir).expanduser()
        # optional cross-encoder stage (rag/reranker.py); "" = off, None = from settings (LRC_RERANKER)
        self.reranker = settings().reranker if reranker is None else reranker
        self.rerank_depth = settings().rerank_depth if rerank_depth is None else int(rerank_depth)
        self.store = Store(self.index_dir)
        self.embed_model = embed_model or DEFAULT_MODEL
        self.max_file_mb = 50.0 if max_file_mb is None else float(max_file_mb)
        self.batch_chunks = batch_chunks or BATCH_CHUNKS
        self._writer = threading.Lock()
        self._mem = threading.RLock()
        self._embedder: Embedder | None = None
        self._chunker: Chunker | None = None
        self._dense: DenseIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._gen: int | None = None
        self._running: set[str] = set()
        self._loaders: list = []  # loader processes of the running ingest
        self._paused: list = []  # those stopped while the model computes

    @classmethod
    def shared(cls) -> "Library":
        """The process-wide library from ``rag.config.settings()`` (created on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                from rag.config import settings

                s = settings()
                cls._shared = cls(s.index_dir, s.embed_model, s.max_file_mb)
            return cls._shared

    # ------------------------------------------------------------------ model & memory
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder.get(self.embed_model)
        return self._embedder

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self.embedder
            self._chunker = Chunker(e.count_tokens, e.window)
        return self._chunker

    def _ready(self) -> None:
        """Model checked (a different model than the stored vectors' -> rebuild) and memory current."""
        with self._mem:
            if self._gen is None:
                if self.store.model_id() != self.embedder.model_id:
                    self.store.set_model(self.embedder.model_id)
            if self._gen is None or self.store.generation() != self._gen:
                self._reload()

    def _model_known(self) -> bool:
        """The store's vectors come from the configured model (by name: no model load needed)."""
        stored = self.store.model_id() or ""
        return bool(stored) and stored.split("|", 1)[0] == (self.embed_model or DEFAULT_MODEL).strip()

    def _reload(self) -> None:
        gen, ids, vecs, owners, texts = self.store.load_all(self.embedder.dim)
        dense = DenseIndex(self.embedder.dim)
        dense.add(owners, vecs)
        lexical = LexicalIndex()
        lexical.add(ids, texts)
        self._dense, self._lexical, self._gen = dense, lexical, gen

    # ------------------------------------------------------------------ ingest
    def _expand(self, paths) -> tuple[list[Path], list[tuple[str, str]]]:
        files: list[Path] = []
        failed: list[tuple[str, str]] = []
        seen: set[str] = set()
        for raw in paths:
            p = Path(raw).expanduser()
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file() and loaders.is_supported(f)
                               and not any(part.startswith(".") for part in f.relative_to(p).parts))
            elif p.exists():
                found = [p]
            else:
                failed.append((str(raw), f"{p.name or raw}: not found"))
                continue
            for f in found:
                key = str(f.resolve())
                if key not in seen:
                    seen.add(key)
                    files.append(Path(key))
        return files, failed

    def ingest(self, paths: list[Path | str], progress: Callable[[IngestProgress], None] | None = None,
               display_names: dict[str, str] | None = None) -> IngestReport:
        """Index files and folders. Never raises for a bad file: it is reported in ``failed``."""
        t0 = time.perf_counter()
        report = IngestReport()
        names = {str(Path(k).expanduser().resolve()): v for k, v in (display_names or {}).items()}

        def tell(stage: str, file: str, done: int, total: int) -> None:
            if progress:
                try:
                    progress(IngestProgress(stage, file, done, total))
                except Exception:
                    pass

        with self._writer:
            if self._gen is None and not self._model_known():
                self._ready()  # a new index or another model: check (and rebuild) before planning
            files, report.failed = self._expand(paths)
            known = self.store.files()
            todo: list[tuple[Path, os.stat_result]] = []
            for f in files:
                try:
                    st = f.stat()
                except OSError as exc:
                    report.failed.append((str(f), f"{f.name}: {exc.strerror or exc}"))
                    continue
                e = known.get(str(f))
                if e and e.size == st.st_size and e.mtime_ns == st.st_mtime_ns:
                    report.unchanged.append(str(f))
                    if str(f) in names and names[str(f)] != e.display_name:
                        self.store.touch(str(f), st.st_size, st.st_mtime_ns, names[str(f)])
                else:
                    todo.append((f, st))
            if todo:
                self._ready()  # the model is only loaded when something is to be embedded
            total = len(files)
            done = len(report.unchanged)
            self.store.add_pending([str(f) for f, _ in todo])
            self._running = {str(f) for f, _ in todo}
            try:
                done = self._ingest_files(todo, known, names, report, tell, done, total)
            finally:
                self._running = set()
        report.seconds = time.perf_counter() - t0
        return report

    def _prepare(self, f: Path, st: os.stat_result, known: dict[str, FileEntry]):
        """Load + chunk one file in this process. Returns a tagged tuple (see ``_item``)."""
        e = known.get(str(f))
        res = ingest_worker.prepare(f, st.st_size, e.hash if e else None, self.max_file_mb, self.chunker)
        return self._item(f, st, res)

    @staticmethod
    def _item(f: Path, st: os.stat_result, res: tuple) -> tuple:
        """(kind, file, stat, hash, doc or reason, drafts) from a ``ingest_worker.prepare`` result."""
        if res[0] == "ok":
            return ("ok", f, st, res[1], res[2], res[3])
        if res[0] == "same":
            return ("same", f, st, res[1], None, None)
        return ("fail", f, st, None, res[1], None)

    def _pause_loaders(self, pause: bool) -> None:
        """Stop (or continue) the loader processes of the running ingest."""
        if not PAUSE_LOADERS:
            return
        import signal

        targets, self._paused = (self._loaders, []) if pause else (self._paused, [])
        for proc in list(targets):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGSTOP if pause else signal.SIGCONT)
                    if pause:
                        self._paused.append(proc)
                except OSError:
                    pass

    def _worker_count(self, todo) -> int:
        """Loader processes for this run: 0 (load in a thread) for small runs of text files."""
        n = LOADER_PROCESSES if LOADER_PROCESSES >= 0 else min(2, os.cpu_count() or 1)
        if n <= 0 or not todo:
            return 0
        big = sum(st.st_size for _, st in todo) > 2 * 1024 * 1024
        if not big and not any(f.suffix.lower() == ".pdf" for f, _ in todo):
            return 0  # a process start (~0.5 s) costs more than it saves
        return min(n, len(todo))

    def _start_worker(self):
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("HF_HUB_OFFLINE", "1")
        return subprocess.Popen([sys.executable, "-m", "rag.ingest_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, close_fds=True)

    def _ingest_files(self, todo, known, names, report: IngestReport, tell, done: int, total: int) -> int:
        q: queue.Queue = queue.Queue(maxsize=32)
        stop = threading.Event()
        nworkers = self._worker_count(todo)
        order = list(range(len(todo)))
        if nworkers > 1:  # largest first: the last file loads while the other process has the rest
            order.sort(key=lambda i: -todo[i][1].st_size)  # (a big file last would load on one core alone)
        jobs = iter(order)
        jobs_lock = threading.Lock()

        def take():
            with jobs_lock:
                return None if stop.is_set() else next(jobs, None)

        def put(item) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def in_thread():
            while (i := take()) is not None:
                f, st = todo[i]
                put(self._prepare(f, st, known))

        def in_process(proc):
            """Feed one loader process job by job; if it dies, the rest is loaded in this thread."""
            current = None
            try:
                cfg = {"model_path": self.embedder.path, "window": self.embedder.window,
                       "max_file_mb": self.max_file_mb, "nice": LOADER_NICE}
                pickle.dump(cfg, proc.stdin)
                proc.stdin.flush()
                pickle.load(proc.stdout)  # ("ready",)
                while (i := take()) is not None:
                    f, st = todo[i]
                    e = known.get(str(f))
                    current = i
                    pickle.dump((i, str(f), st.st_size, e.hash if e else None), proc.stdin)
                    proc.stdin.flush()
                    key, res = pickle.load(proc.stdout)
                    current = None
                    put(self._item(f, st, res))
                proc.stdin.close()
            except Exception as exc:  # the process could not start or died: never lose the batch
                if current is not None:
                    f, st = todo[current]
                    try:  # the pipe can close a moment before the process is reaped
                        code = proc.wait(timeout=2) if proc is not None else None
                    except subprocess.TimeoutExpired:
                        code = None
                    put(("fail", f, st, None, f"{f.name}: the loader process stopped while reading it "
                                              f"({'exit code ' + str(code) if code is not None else type(exc).__name__})",
                         None))
                in_thread()
            finally:
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=0 if stop.is_set() else 5)
                    except subprocess.TimeoutExpired:
                        pass
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for pipe in (proc.stdin, proc.stdout):
                    try:
                        pipe.close()
                    except Exception:
                        pass

        remaining = [max(1, nworkers)]
        remaining_lock = threading.Lock()

        def producer(proc=None):
            try:
                if proc is None:
                    in_thread()
                else:
                    in_process(proc)
            finally:
                with remaining_lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    q.put(None)

        threads = []
        procs = []
        if nworkers:
            for _ in range(nworkers):
                try:
                    proc = self._start_worker()
                    procs.append(proc)
                    self._loaders.append(proc)
                except OSError:
                    proc = None
                threads.append(threading.Thread(target=producer, args=(proc,), name="rag-ingest-loader", daemon=True))
        else:
            threads.append(threading.Thread(target=producer, name="rag-ingest-loader", daemon=True))
        for t in threads:
            t.start()
        batch: list[tuple] = []
        batch_chunks = 0
        finished = False
        try:
            while not finished:
                tw = time.perf_counter()
                item = q.get()
                report.wait_s += time.perf_counter() - tw
                if item is None:
                    finished = True
                else:
                    kind, f, st, h, payload, drafts = item
                    tell("loading", f.name, done, total)
                    if kind == "fail":
                        report.failed.append((str(f), payload))
                        self.store.clear_pending([str(f)])
                        done += 1
                        continue
                    if kind == "same":
                        self.store.touch(str(f), st.st_size, st.st_mtime_ns, names.get(str(f)))
                        report.unchanged.append(str(f))
                        done += 1
                        continue
                    batch.append(item)
                    batch_chunks += len(drafts)
                if batch and (finished or batch_chunks >= self.batch_chunks or q.empty() and batch_chunks >= 64):
                    done = self._embed_and_commit(batch, known, names, report, tell, done, total)
                    batch, batch_chunks = [], 0
        finally:
            stop.set()
            self._loaders = []
            self._pause_loaders(False)
            for proc in procs:  # an early stop (error, interrupt) does not wait for a file to finish
                if proc.poll() is None and not finished:
                    proc.kill()
            while any(t.is_alive() for t in threads):
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            for t in threads:
                t.join()
        return done

    def _embed_and_commit(self, batch, known, names, report: IngestReport, tell, done: int, total: int) -> int:
        texts = [v for item in batch for d in item[5] for v in (d.views or [d.embed_text])]
        tell("embedding", batch[0][1].name if len(batch) == 1 else f"{len(batch)} files", done, total)
        t0 = time.perf_counter()
        self._pause_loaders(True)
        try:
            vecs = self.embedder.encode(texts)
        finally:
            self._pause_loaders(False)
        t1 = time.perf_counter()
        report.embed_s += t1 - t0
        tell("saving", batch[-1][1].name, done, total)
        commits = []
        row = 0
        for _, f, st, h, doc, drafts in batch:
            n = sum(len(d.views or [d.embed_text]) for d in drafts)
            commits.append(FileCommit(str(f), names.get(str(f)) or (known[str(f)].display_name if str(f) in known
                                                                      else f.name),
                                      h, st.st_size, st.st_mtime_ns, doc.kind, doc.pages, doc.contents_pages,
                                      drafts, vecs[row:row + n]))
            row += n
        with self._mem:
            before, after, removed, added = self.store.commit(commits)
            if self._gen == before:
                self._dense.remove(removed)
                self._lexical.remove(removed)
                for c, (ids, _) in zip(commits, added):
                    arr = np.asarray(ids, dtype=np.int64)
                    owners = np.repeat(arr, [len(d.views or [d.embed_text]) for d in c.drafts])
                    self._dense.add(owners, c.vectors)
                    self._lexical.add(arr, [d.embed_text for d in c.drafts])
                self._gen = after
            else:  # another process wrote meanwhile: read everything again
                self._reload()
        report.save_s += time.perf_counter() - t1
        for c, (_, f, _, _, doc, drafts) in zip(commits, batch):
            (report.updated if c.path in known else report.added).append(c.path)
            report.chunks_added += len(drafts)
            report.skipped_contents_pages += len(doc.contents_pages)
            done += 1
            tell("saving", f.name, done, total)
        return done

    def resume(self, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Index what an interrupted run (or a change of model) left out."""
        return self.ingest([p for p in self.store.pending() if Path(p).exists()], progress)

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int = 4, mode: str = "hybrid", rerank: bool = True) -> list[Hit]:
        """Top-k chunks for a question. mode: "hybrid" (default), "dense" or "lexical". With a
        re-ranker configured (and ``rerank``), it re-orders the top ``rerank_depth`` candidates
        (raises ``RerankerError`` when it cannot be loaded)."""
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode '{mode}' (use one of: {', '.join(MODES)})")
        if not query or not query.strip():
            return []
        self._ready()
        dense, lexical = self._dense, self._lexical
        qv = self.embedder.encode_query(query) if mode != "lexical" else None
        reranker = Reranker.get(self.reranker) if (rerank and self.reranker and k > 0) else None
        ranked = rank(qv, query, dense, lexical, max(k, self.rerank_depth) if reranker else k, mode)
        chunks = self.store.chunks([i for i, _, _ in ranked])
        hits = []
        for i, score, scores in ranked:
            ch = chunks.get(i)
            if ch is not None:
                hits.append(Hit(chunk=ch, score=score, rank=len(hits) + 1, scores=scores))
        if reranker is None or len(hits) < 2:
            return hits[:k]
        s = reranker.scores(query, [h.chunk.matched_text for h in hits])
        order = np.argsort(-s, kind="stable")[:k]
        return [Hit(chunk=hits[j].chunk, score=float(s[j]), rank=n + 1,
                    scores={**hits[j].scores, "fused": hits[j].score, "rerank": float(s[j])})
                for n, j in enumerate(order)]

    # ------------------------------------------------------------------ manage
    def remove(self, path) -> int:
        """Remove a file (or every file under a folder) from the index. Returns chunks removed."""
        p = Path(path).expanduser()
        key = str(p.resolve()) if p.exists() else str(p.absolute())
        with self._writer:
            self._ready()
            known = self.store.files()
            targets = [k for k in known if k == key or k.startswith(key.rstrip("/") + "/")]
            if not targets:  # a display name or a bare file name
                targets = [k for k, e in known.items() if str(path) in (e.display_name, Path(k).name)]
            pend = [k for k in self.store.pending() if k == key or k.startswith(key.rstrip("/") + "/")]
            if not targets and not pend:
                return 0
            with self._mem:
                before, after, removed = self.store.remove(targets + pend)
                if self._gen == before:
                    self._dense.remove(removed)
                    self._lexical.remove(removed)
                    self._gen = after
                else:
                    self._reload()
            return len(removed)

    def stats(self) -> LibraryStats:
        files, chunks = self.store.counts()
        missing = [p for p in self.store.pending() if p not in self._running]
        return LibraryStats(files, chunks, missing, self.store.model_id() or "", str(self.index_dir))

    def files(self) -> list[FileEntry]:
        return list(self.store.files().values())

    def display_name(self, path: str) -> str:
        e = self.store.files().get(path)
        return e.name if e else Path(path).name
