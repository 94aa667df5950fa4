"""The ingest run: files and folders in, chunks with vectors committed to the store and the search index.

Files and folders (recursive) -> unchanged files are skipped by size+mtime, then by content hash
(nothing is embedded for them); a file whose content the library holds under another path (a rename,
a move, a copy) gets that path's passages and vectors copied (``reuse.py``: nothing is embedded for it
either) -> the loader pool (``pool.py``) loads and chunks the next files
while this thread embeds chunks in large batches, with the loader processes stopped while the
model computes -> each batch of files is committed in one transaction (store and search index
together). Files planned but not yet committed are recorded as pending, so an interrupted run
says what it left out and a re-run (or ``resume()``) completes it.

The ingester is handed its parts: the store, the live search index (``IndexWriter``: loads the
index, commits to store and memory together), and the embedder (a provider: the model is only
loaded when something is to be embedded). The chunker is ``Chunker.for_model`` of that embedder,
in this process and in the loader processes alike. One run at a time: the caller serialises
writers (``rag.library.Library`` does). The store is either backend's (``Manifest``: the SQLite store
or PostgreSQL's); when it goes away mid-run (``StoreUnavailable``, ``StoreTimeout``), the batch being saved is not
saved (its transaction rolls back), the run stops, and the files left are reported failed and stay
pending: a re-run completes them. A progress callback may stop the run between batches by raising
``records.IngestStopped`` (``rag worker``: a cancel, a stop); the same holds for what it leaves.

Owners (``rag.owners``): an ingest of a user's chat upload is given that user (``owner``) and commits it
with each file; any other ingest keeps the owner the library recorded for a file (indexed or pending:
a re-index, a resume, a rebuild never make a user's upload shared), and a new file is shared.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Protocol

from rag.config import settings
from rag.embedder import Embedder
from rag.ingest import loaders
from rag.ingest.chunking import Chunker
from rag.ingest.pool import LoaderPool, LoaderSpares, process_count
from rag.ingest.loaders import OcrOptions
from rag.ingest.records import (FileFailed, FileJob, IngestProgress, IngestReport, Loaded, LoaderConfig, LoadResult,
                                OcrPage, Unchanged)
from rag.ingest.reuse import Reuse, reusable, stored_commit
from rag.store import FileCommit, FileEntry, StoreTimeout, StoreUnavailable

Progress = Callable[[IngestProgress], None]
_MIN_BATCH_CHUNKS = 64  # embed what has arrived once the loaders fall behind, if at least this much


class Manifest(Protocol):
    """What the ingester needs of the library's store (``rag.backends.LibraryStore``)."""

    def files(self) -> dict[str, FileEntry]: ...
    def owners(self) -> dict[str, str]: ...
    def pending(self) -> list[str]: ...
    def add_pending(self, paths: list[str], owners: dict[str, str] | None = None) -> None: ...
    def clear_pending(self, paths: list[str]) -> None: ...
    def touch(self, path: str, size: int, mtime_ns: int, display_name: str | None = None) -> None: ...
    def file_rows(self, path: str, dim: int) -> tuple[list, object]: ...  # a file's stored passages + vectors


class IndexWriter(Protocol):
    """What the ingester needs of the library's backend (``rag.backends.Backend``)."""

    def ensure_model(self) -> None:
        """Before planning: a new index, or vectors from another model, is checked (and rebuilt)."""

    def load(self) -> None:
        """The embedding model loaded and the in-memory index current with the store."""

    def commit(self, commits: list[FileCommit]) -> None:
        """Files' new chunks and vectors to the store (one transaction) and to the in-memory index."""


def expand(paths) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """Files to index (folders recursively; each file once, as an absolute resolved path), (path,
    reason) for the paths that do not exist, and (path, reason) for what a folder holds but is not
    indexed: an unsupported type, a hidden file, a link that leads outside the folder (not followed)."""
    files: list[Path] = []
    failed: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            root, found = p.resolve(), []
            for f in sorted(p.rglob("*")):
                if f.is_symlink() and f.is_dir():  # never walked into; reported when it leads outside
                    if not f.resolve().is_relative_to(root):
                        skipped.append((str(f), "a link that leads outside the folder (not followed)"))
                    continue
                if not f.is_file():
                    continue
                if any(part.startswith(".") for part in f.relative_to(p).parts):
                    skipped.append((str(f), "hidden"))
                elif not f.resolve().is_relative_to(root):
                    skipped.append((str(f), "a link that leads outside the folder (not followed)"))
                elif not loaders.is_supported(f):
                    skipped.append((str(f), f"unsupported type ({f.suffix.lower() or 'no extension'})"))
                else:
                    found.append(f)
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
    return files, failed, skipped


def unchanged(entry: FileEntry | None, st) -> bool:
    """A file whose size and mtime (``os.stat_result``) are what its manifest entry recorded: not read
    again (a re-index is forced instead)."""
    return entry is not None and entry.size == st.st_size and entry.mtime_ns == st.st_mtime_ns


class Ingester:
    def __init__(self, store: Manifest, index: IndexWriter, embedder: Callable[[], Embedder],
                 max_file_mb: float = 50.0, batch_chunks: int | None = None):
        self.store = store
        self.index = index
        self._embedder = embedder
        self.max_file_mb = max_file_mb
        self.batch_chunks = batch_chunks  # chunks per embedding call / commit; None: LRC_INGEST_BATCH
        self._chunker: Chunker | None = None
        self.running: set[str] = set()  # files the current run has planned and not finished
        self.pool: LoaderPool | None = None  # the loader pool of the current run
        self.spares: LoaderSpares | None = None  # loader processes kept between runs (``keep_loaders``)

    @property
    def embedder(self) -> Embedder:
        return self._embedder()

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self.embedder
            self._chunker = Chunker.for_model(e.path, e.window)
        return self._chunker

    @contextmanager
    def keep_loaders(self):
        """Loader processes stay started from one run to the next for the length of the block (``rag worker``,
        job after job); ``spares.close()`` ends the idle ones at any time."""
        self.spares = LoaderSpares()
        try:
            yield self.spares
        finally:
            spares, self.spares = self.spares, None
            spares.close()

    @property
    def loader_processes(self) -> list[subprocess.Popen]:
        """The loader processes of the running ingest (empty between runs)."""
        return list(self.pool.processes) if self.pool else []

    @property
    def paused_loaders(self) -> list[subprocess.Popen]:
        """Those of them stopped right now (while the model computes)."""
        return list(self.pool.stopped) if self.pool else []

    def ingest(self, paths: list[Path | str], progress: Progress | None = None,
               display_names: dict[str, str] | None = None, force: bool = False,
               owner: str | None = None) -> IngestReport:
        """Index files and folders. Never raises for a bad file: it is reported in ``failed``.
        ``force``: read, chunk and embed every file again, even an unchanged one (a re-index). ``owner``:
        the user whose chat upload these files are (None: each keeps the owner recorded, else shared)."""
        t0 = time.perf_counter()
        report = IngestReport()
        names = {str(Path(k).expanduser().resolve()): v for k, v in (display_names or {}).items()}
        self.index.ensure_model()
        files, report.failed, report.skipped = expand(paths)
        known = self.store.files()
        jobs = self._plan(files, known, names, report, force, owner)
        if jobs:
            self.index.load()  # the model is only loaded when something is to be embedded (or copied)
        reuse, jobs, twins = ([], jobs, []) if force else reusable(jobs, known)
        planned = jobs + [r.job for r in reuse + twins]
        recorded = self.store.owners() if planned else {}
        owners = {str(j.path): owner or recorded[str(j.path)] for j in planned if owner or str(j.path) in recorded}
        self.store.add_pending([str(j.path) for j in planned], owners)
        self.running = {str(j.path) for j in planned}
        try:
            IngestRun(self, jobs, known, names, report, progress, total=len(files), owners=owners, reuse=reuse,
                      twins=twins).run()
        finally:
            self.running = set()
        report.seconds = time.perf_counter() - t0
        return report

    def _plan(self, files: list[Path], known: dict[str, FileEntry], names: dict[str, str],
              report: IngestReport, force: bool = False, owner: str | None = None) -> list[FileJob]:
        """The files to load: not in the index, or with another size or mtime than it recorded
        (every file when ``force``: no known hash either, so equal content is loaded again; so too a file
        recorded with another owner than ``owner``, to commit it with its owner).
        The others are reported unchanged (a new display name is recorded for them)."""
        jobs: list[FileJob] = []
        for f in files:
            try:
                st = f.stat()
            except OSError as exc:
                report.failed.append((str(f), f"{f.name}: {exc.strerror or exc}"))
                continue
            e = known.get(str(f))
            if force or (owner and e is not None and e.owner != owner):
                jobs.append(FileJob(f, st.st_size, st.st_mtime_ns, None))
            elif unchanged(e, st):
                report.unchanged.append(str(f))
                if str(f) in names and names[str(f)] != e.display_name:
                    self.store.touch(str(f), st.st_size, st.st_mtime_ns, names[str(f)])
            else:
                jobs.append(FileJob(f, st.st_size, st.st_mtime_ns, e.hash if e else None))
        return jobs

    def resume(self, progress: Progress | None = None) -> IngestReport:
        """Index what an interrupted run (or a change of model) left out."""
        return self.ingest([p for p in self.store.pending() if Path(p).exists()], progress)


class IngestRun:
    """One run over planned files: results from the loader pool, embedded in batches, committed."""

    def __init__(self, ingester: Ingester, jobs: list[FileJob], known: dict[str, FileEntry],
                 names: dict[str, str], report: IngestReport, progress: Progress | None, total: int,
                 owners: dict[str, str] | None = None, reuse: list[Reuse] | None = None,
                 twins: list[Reuse] | None = None):
        self.ingester = ingester
        self.reuse = reuse or []  # files whose content is stored under another path: copied, not embedded
        self.twins = twins or []  # files with the content of another file of this run: copied after it
        self.owners = owners or {}  # path -> the user whose upload it is (committed with it)
        self.store = ingester.store
        self.jobs = jobs
        self.known = known
        self.names = names
        self.report = report
        self.progress = progress
        self.total = total
        self.done = len(report.unchanged)
        self.batch_chunks = ingester.batch_chunks or settings().ingest_batch
        self._telling = threading.Lock()  # OCR pages are told from the pool's feeding threads

    def tell(self, stage: str, file: str, page: OcrPage | None = None) -> None:
        if self.progress:
            extra = (page.page, page.step, page.steps) if page else ()
            try:
                with self._telling:
                    self.progress(IngestProgress(stage, file, self.done, self.total, *extra))
            except Exception:  # a callback's error is not the ingest's; IngestStopped (records) passes
                pass

    def ocr_page(self, page: OcrPage) -> None:
        """A loader reads a page by OCR: "OCR page 3/12 of scan.pdf"."""
        self.tell("ocr", Path(page.path).name, page)

    def run(self) -> None:
        try:
            self._copy(self.reuse)
            if self.jobs:
                self._load_and_embed()
            self._copy(self._stored_twins())
        except (StoreUnavailable, StoreTimeout) as exc:  # what was not committed is reported and stays pending
            self._abandon(exc)

    def _load_and_embed(self) -> None:
        ing = self.ingester
        s = settings()
        processes = process_count(self.jobs, s.ingest_workers, own=s.docs_corpus)
        ocr_jobs = max(1, (os.cpu_count() or 1) // max(1, processes))  # each loader's share of the cores
        config = LoaderConfig(ing.embedder.path, ing.embedder.window, ing.max_file_mb, s.loader_nice,
                              OcrOptions.from_settings(ocr_jobs), memory_mb=max(0, s.loader_memory_mb),
                              cpu_seconds=max(0, s.loader_cpu_seconds))
        pool = LoaderPool(self.jobs, processes, config, lambda: ing.chunker, pause=s.pause_loaders,
                          note=self.ocr_page, spares=ing.spares)
        ing.pool = pool
        try:
            with pool:
                self._consume(pool)
        finally:
            ing.pool = None

    def _abandon(self, exc: Exception) -> None:
        r = self.report
        settled = set(r.added) | set(r.updated) | set(r.unchanged) | {f for f, _ in r.failed}
        for job in self.jobs + [r.job for r in self.reuse + self.twins]:
            if str(job.path) not in settled:
                r.failed.append((str(job.path), f"{job.path.name}: not saved. {exc} Run the ingest again to "
                                                f"complete it."))

    def _stored_twins(self) -> list[Reuse]:
        """The files copied from a twin of this run, with the twin's stored entry as their source (a twin
        that could not be indexed fails them too)."""
        if not self.twins:
            return []
        stored = self.store.files()
        out = []
        for r in self.twins:
            e = stored.get(r.twin)
            if e is not None and e.hash == r.hash:
                out.append(Reuse(r.job, r.hash, e))
            else:
                self.report.failed.append((str(r.job.path), f"{r.job.path.name}: the same content as "
                                                            f"{Path(r.twin).name}, which could not be indexed"))
                self.store.clear_pending([str(r.job.path)])
                self.done += 1
        return out

    def _copy(self, reuse: list[Reuse]) -> None:
        """Commit reused files: the source's passages and vectors under each file's own path."""
        dim = self.ingester.embedder.dim if reuse else 0
        batch: list[FileCommit] = []
        for n, r in enumerate(reuse, 1):
            path = str(r.job.path)
            batch.append(stored_commit(self.store, r.source, dim, r.job, self._display_name(r.job.path),
                                       self.owners.get(path)))
            if n == len(reuse) or sum(len(c.drafts) for c in batch) >= self.batch_chunks:
                self.tell("saving", batch[-1].display_name)
                self.ingester.index.commit(batch)
                for c in batch:
                    (self.report.updated if c.path in self.known else self.report.added).append(c.path)
                    self.report.reused.append(c.path)
                    self.done += 1
                batch = []

    def _consume(self, pool: LoaderPool) -> None:
        batch: list[Loaded] = []
        chunks = 0
        while True:
            t = time.perf_counter()
            result = pool.get()
            self.report.wait_s += time.perf_counter() - t
            if result is None:
                break
            if not self._settle(result):
                continue
            batch.append(result)
            chunks += len(result.drafts)
            if chunks >= self.batch_chunks or pool.idle() and chunks >= _MIN_BATCH_CHUNKS:
                self._embed_and_commit(batch, pool)
                batch, chunks = [], 0
        if batch:
            self._embed_and_commit(batch, pool)

    def _settle(self, result: LoadResult) -> bool:
        """Record a failed or unchanged file; True for a loaded one (to be embedded)."""
        path = str(result.job.path)
        self.tell("loading", result.job.path.name)
        if isinstance(result, FileFailed):
            self.report.failed.append((path, result.reason))
            self.store.clear_pending([path])
        elif isinstance(result, Unchanged):
            self.store.touch(path, result.job.size, result.job.mtime_ns, self.names.get(path))
            self.report.unchanged.append(path)
        else:
            return True
        self.done += 1
        return False

    def _display_name(self, path: Path) -> str:
        key = str(path)
        return self.names.get(key) or (self.known[key].display_name if key in self.known else path.name)

    def _embed_and_commit(self, batch: list[Loaded], pool: LoaderPool) -> None:
        texts = [t for item in batch for t in item.vector_texts]
        self.tell("embedding", batch[0].job.path.name if len(batch) == 1 else f"{len(batch)} files")
        t0 = time.perf_counter()
        with pool.paused():
            vecs = self.ingester.embedder.encode(texts)
        t1 = time.perf_counter()
        self.report.embed_s += t1 - t0
        self.tell("saving", batch[-1].job.path.name)
        commits = []
        row = 0
        for item in batch:
            job, doc, n = item.job, item.document, len(item.vector_texts)
            commits.append(FileCommit(str(job.path), self._display_name(job.path), item.hash, job.size, job.mtime_ns,
                                      doc.kind, doc.pages, doc.contents_pages, item.drafts, vecs[row:row + n],
                                      self.owners.get(str(job.path))))
            row += n
        self.ingester.index.commit(commits)
        self.report.save_s += time.perf_counter() - t1
        for c, item in zip(commits, batch):
            (self.report.updated if c.path in self.known else self.report.added).append(c.path)
            self.report.chunks_added += len(item.drafts)
            self.report.skipped_contents_pages += len(item.document.contents_pages)
            self.report.ocr_pages += len(item.document.ocr_pages)
            self.report.warnings += [(c.path, w) for w in item.document.warnings]
            self.done += 1
            self.tell("saving", item.job.path.name)
