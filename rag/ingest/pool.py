"""The loader pool: files are loaded and chunked ahead of the embedding, in loader processes
(``python -m rag.ingest.worker``) or, for small runs of text files, in one thread.

Measured behaviour kept here (docs/BENCHMARKS.md, "Ingest throughput"; why in ``worker.py``):
- up to 2 loader processes (one per core) for runs with a PDF or more than 2 MB; a thread
  otherwise (a process start, ~0.5 s, costs more than it saves), and for the bundled guide alone;
- with 2 processes the largest files go first (a big file loading alone at the end wastes a core);
- the processes are stopped (SIGSTOP) while the model computes a batch (``paused()``) and continued
  while the embedding side waits for chunks or saves;
- a loader process that dies fails only the file it was reading (named with the limit it hit:
  ``limits``) and a new process loads the rest; one that cannot start changes nothing but where the
  files are loaded (a thread, where only the loaders' own caps apply);
- each loader process leads its own process group, so pausing (and killing) it reaches the OCR
  commands it runs (tesseract, pdftoppm) too; its ``OcrPage`` records go to ``note`` as they come.

A ``LoaderSpares`` keeps the processes of a run that ended cleanly started for the next run with the same
config (``rag worker`` runs job after job: starting 2 processes per job was a third of a worker's time on
small files, docs/BENCHMARKS.md "Library at scale").

Each process is fed one job at a time over a small pickle protocol (``LoaderProcess``; stdlib
process pools were not used: they cannot pause their workers, and a dying worker breaks the whole
pool instead of one file). Results arrive through a bounded queue in completion order.
"""
from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable

from rag.config import offline_env
from rag.ingest import limits
from rag.ingest.chunking import Chunker
from rag.ingest.loaders import BINARY_EXTS
from rag.ingest.records import FileFailed, FileJob, LoaderConfig, LoadResult, OcrPage
from rag.ingest.loading import Note, prepare
from rag.owners import under

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the rag package
_BIG_RUN_BYTES = 2 * 1024 * 1024
_QUEUE_SIZE = 32


def start_loader_process() -> subprocess.Popen:
    """A new loader process speaking the protocol of ``rag.ingest.worker`` on its stdin/stdout."""
    env = offline_env(dict(os.environ))
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen([sys.executable, "-m", "rag.ingest.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, close_fds=True, process_group=0)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """``sig`` to a loader process and, when it leads its own process group, to its OCR commands too."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
            return
    except OSError:
        pass
    os.kill(proc.pid, sig)


def process_count(jobs: list[FileJob], configured: int, own: Path | None = None) -> int:
    """Loader processes for a run: ``configured`` (-1: one per core, up to 2); 0 (load in a thread)
    for small runs of text files, and for runs of the app's ``own`` files only (the bundled guide: no
    hostile file to keep apart, and two process starts tripled the CPU of a fresh library's first start)."""
    n = configured if configured >= 0 else min(2, os.cpu_count() or 1)
    if n <= 0 or not jobs or (own is not None and all(under(j.path.resolve(), own) for j in jobs)):
        return 0
    big = sum(j.size for j in jobs) > _BIG_RUN_BYTES
    if not big and not any(j.path.suffix.lower() in BINARY_EXTS for j in jobs):  # parsed or OCR'd, not just decoded
        return 0
    return min(n, len(jobs))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def can_pause() -> bool:
    return hasattr(os, "kill") and hasattr(signal, "SIGSTOP")


class LoaderProcess:
    """One loader process and its side of the protocol: config, then one job at a time."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.ready = False  # the config was sent and answered (a spare from an earlier run is)

    def start(self, config: LoaderConfig) -> None:
        if self.ready:
            return
        self._send(config)
        pickle.load(self.proc.stdout)  # ("ready",): the tokenizer is loaded
        self.ready = True

    def load(self, job: FileJob, note: Note | None = None) -> LoadResult:
        """The job's load result; the ``OcrPage`` records sent before it go to ``note``."""
        self._send(job)
        while True:
            message = pickle.load(self.proc.stdout)
            if not isinstance(message, OcrPage):
                return message
            if note is not None:
                try:
                    note(message)
                except Exception:  # progress is never worth a file
                    pass

    def _send(self, message) -> None:
        pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def died_reading(self, job: FileJob, exc: Exception, config: LoaderConfig) -> FileFailed:
        """The result for the job the process was reading when it stopped (or its pipe broke): a limit
        it hit (``limits.death_reason``) or how it ended."""
        try:  # the pipe can close a moment before the process is reaped
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            how = type(exc).__name__
        elif code < 0:
            how = f"signal {_signal_name(-code)}"
        else:
            how = f"exit code {code}"
        return FileFailed(job, limits.death_reason(job.path.name, code, config.memory_mb, config.cpu_seconds, how))

    def finish(self, wait: float) -> None:
        """End the process: up to ``wait`` seconds to exit by itself, then killed; pipes closed."""
        try:
            self.proc.stdin.close()  # no more jobs: the worker exits
        except OSError:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                _signal(self.proc, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except Exception:
                pass


class LoaderSpares:
    """Started loader processes kept between runs, each with the config it was started with: a run takes
    those of its config (``LoaderPool``), and gives back the ones that were idle when it ended cleanly."""

    def __init__(self, limit: int = 4):
        self.limit = limit  # idle processes kept at most (runs with other configs would pile them up): oldest ended
        self._idle: list[tuple[LoaderConfig, LoaderProcess]] = []
        self._lock = threading.Lock()

    def take(self, config: LoaderConfig) -> LoaderProcess | None:
        with self._lock:
            dead = [f for _, f in self._idle if f.proc.poll() is not None]
            self._idle = [(c, f) for c, f in self._idle if f not in dead]
            found = next((i for i, (kept, _) in enumerate(self._idle) if kept == config), None)
            feeder = None if found is None else self._idle.pop(found)[1]
        for gone in dead:
            gone.finish(wait=0)
        return feeder

    def give(self, config: LoaderConfig, feeder: LoaderProcess) -> None:
        over: list[LoaderProcess] = []
        if feeder.proc.poll() is None:
            with self._lock:
                self._idle.append((config, feeder))
                while len(self._idle) > self.limit:
                    over.append(self._idle.pop(0)[1])
        else:
            over.append(feeder)
        for extra in over:
            extra.finish(wait=2)

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """End every kept process (they are idle: each exits when its stdin closes)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, feeder in idle:
            feeder.finish(wait=2)


class LoaderPool:
    """Load ``jobs`` in ``processes`` loader processes (0: one thread of this process).

    Use as a context manager; ``get()`` returns load results as they come and None when all are
    in. ``paused()`` stops the processes for the length of a block (the model's turn). With ``spares``,
    the processes come from there when it has them and go back there when every job is done."""

    def __init__(self, jobs: list[FileJob], processes: int, config: LoaderConfig,
                 chunker: Callable[[], Chunker], pause: bool = True, note: Note | None = None,
                 spares: LoaderSpares | None = None):
        self.config = config
        self._spares = spares
        self._idle: list[LoaderProcess] = []  # processes whose feeding ended with no job left
        self._note = note  # told of each page read by OCR (from the feeding threads)
        self._chunker = chunker  # built on first use (only the thread needs one here)
        self._nproc = processes
        self._pause = pause and can_pause()
        if processes > 1:  # largest first: the last file loads while the other process has the rest
            jobs = sorted(jobs, key=lambda j: -j.size)  # (a big file last would load on one core alone)
        self._jobs = iter(jobs)
        self._jobs_lock = threading.Lock()
        self._results: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
        self._stop = threading.Event()
        self._producers = 0
        self._producers_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._finished = False
        self.processes: list[subprocess.Popen] = []  # loader processes started for this run
        self.stopped: list[subprocess.Popen] = []  # those stopped now (while the model computes)

    # ------------------------------------------------------------------ the embedding side
    def __enter__(self) -> "LoaderPool":
        feeders: list[LoaderProcess | None] = []
        for _ in range(self._nproc):
            feeder = self._spares.take(self.config) if self._spares is not None else None
            try:
                feeder = feeder or LoaderProcess(start_loader_process())
                self.processes.append(feeder.proc)
            except OSError:
                pass  # could not start: this producer loads in a thread
            feeders.append(feeder)
        if not feeders:
            feeders.append(None)
        self._producers = len(feeders)
        self._threads = [threading.Thread(target=self._produce, args=(f,), name="rag-ingest-loader", daemon=True)
                         for f in feeders]
        for t in self._threads:
            t.start()
        return self

    def get(self) -> LoadResult | None:
        """The next load result (blocks until one is ready); None when every job is done."""
        result = self._results.get()
        if result is None:
            self._finished = True
        return result

    def idle(self) -> bool:
        """No result is waiting right now."""
        return self._results.empty()

    @contextmanager
    def paused(self):
        """Loader processes stopped for the duration of the block (torch gets the cores)."""
        self._signal_all(True)
        try:
            yield
        finally:
            self._signal_all(False)

    def __exit__(self, *exc) -> None:
        """Stop: continue any stopped process, kill the processes of an unfinished run (an error or
        an interrupt does not wait for a file to finish), and wait for the feeding threads."""
        self._stop.set()
        self._signal_all(False)
        for proc in self.processes:
            if proc.poll() is None and not self._finished:
                try:
                    _signal(proc, signal.SIGKILL)
                except OSError:
                    pass
        while any(t.is_alive() for t in self._threads):
            try:
                self._results.get(timeout=0.1)
            except queue.Empty:
                pass
        for t in self._threads:
            t.join()
        idle, self._idle = self._idle, []
        for feeder in idle:  # (only with spares) kept for the next run when this one finished; cut short: killed above
            if self._finished:
                self._spares.give(self.config, feeder)
            else:
                feeder.finish(wait=0)
        self.processes = []

    def _signal_all(self, stop: bool) -> None:
        if not self._pause:
            return
        targets, self.stopped = (self.processes, []) if stop else (self.stopped, [])
        for proc in list(targets):
            if proc.poll() is None:
                try:
                    _signal(proc, signal.SIGSTOP if stop else signal.SIGCONT)
                    if stop:
                        self.stopped.append(proc)
                except OSError:
                    pass

    # ------------------------------------------------------------------ the loading side (threads)
    def _take(self) -> FileJob | None:
        with self._jobs_lock:
            return None if self._stop.is_set() else next(self._jobs, None)

    def _put(self, result: LoadResult) -> None:
        while not self._stop.is_set():
            try:
                self._results.put(result, timeout=0.2)
                return
            except queue.Full:
                continue

    def _produce(self, feeder: LoaderProcess | None) -> None:
        try:
            if feeder is None:
                self._load_here()
            else:
                self._feed(feeder)
        finally:
            with self._producers_lock:
                self._producers -= 1
                last = self._producers == 0
            if last:
                self._results.put(None)

    def _load_here(self) -> None:
        """Load in this thread: the server's own process, where no per-file limit can be set (see
        ``limits``); the loaders' own caps still apply."""
        config = replace(self.config, memory_mb=0, cpu_seconds=0)
        while (job := self._take()) is not None:
            self._put(prepare(job, self._chunker(), config, self._note))

    def _feed(self, feeder: LoaderProcess) -> None:
        """Feed loader processes job by job. One that dies reading a file (a limit it hit, a crash) fails
        that file and is replaced by a new one; if none can be started, the rest is loaded in this thread."""
        while feeder is not None:
            current, idle = None, False
            try:
                feeder.start(self.config)
                while (job := self._take()) is not None:
                    current = job
                    result = feeder.load(job, self._note)
                    current = None
                    self._put(result)
                idle = True
                return
            except Exception as exc:  # the process could not start or died: never lose the batch
                if current is not None:
                    self._put(feeder.died_reading(current, exc, self.config))
            finally:
                if idle and self._spares is not None:  # kept for the next run if this one ends well (__exit__)
                    self._idle.append(feeder)
                else:
                    feeder.finish(wait=0 if self._stop.is_set() else 5)
            # died reading a file: a new process for the rest; never started (or died between files): here
            feeder = self._replacement() if current is not None else None
        self._load_here()

    def _replacement(self) -> LoaderProcess | None:
        """A new loader process for the next files (None when the run is stopping or none can start)."""
        if self._stop.is_set():
            return None
        try:
            proc = start_loader_process()
        except OSError:
            return None
        self.processes.append(proc)
        return LoaderProcess(proc)
