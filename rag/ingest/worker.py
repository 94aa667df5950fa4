"""The loader process: load + chunk files (``loading.prepare``) one at a time for the pool.

Why processes: PDF text extraction (pypdf, pure Python) is ~20 ms of CPU per page. In a thread
of the embedding process it holds the GIL against the model's Python code and, on 2 cores,
preempts torch's OpenMP threads, which then wait for each other at every barrier (measured: an
encode that takes 4.3 s alone took 13.2 s next to a pypdf loop). Running the loaders at low
priority (nice 19) made it worse on a whole ingest: starved, they stay runnable for the whole
run and keep stealing slices from torch (3 PDFs: embedding 50.7 s vs 26.0 s). So the pool
(``rag.ingest.pool``) pauses these processes (SIGSTOP) while the model computes a batch and lets
them run at full speed (both cores) while it waits for chunks or saves: loading and embedding
alternate instead of fighting. Workers only need pypdf and the tokenizer (``tokenizers``, the
model's own ``tokenizer.json``), not torch.

Protocol (pickle over the child's stdin/stdout): the parent sends one ``LoaderConfig``, then
``FileJob``s one at a time, then ``None``; the child answers the config with ``("ready",)`` and each
job with zero or more ``OcrPage`` records (progress: a page it reads by OCR) followed by one load
result (``Loaded`` | ``Unchanged`` | ``FileFailed``). A dead parent closes the pipes and the child exits
(and on Linux it is killed with the parent). OCR runs ``tesseract`` and ``pdftoppm`` as children of
this process, in its process group (``pool.start_loader_process``), so pausing the group pauses them too.
Each process holds at most ``LoaderConfig.memory_mb`` of data and spends at most ``cpu_seconds`` of CPU per
file (``rag.ingest.limits``): a file past them fails alone, and the pool replaces a process that it ended.

    python -m rag.ingest.worker        # started by rag.ingest.pool, not by hand
"""
from __future__ import annotations

import os
import pickle
import sys

from rag.ingest import limits
from rag.ingest.chunking import Chunker
from rag.ingest.loading import prepare
from rag.ingest.records import FileJob, Loaded, LoaderConfig

READY = ("ready",)


def _die_with_parent() -> None:
    try:  # Linux: SIGKILL this worker when the parent dies (also mid-extraction)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _send(out, message) -> None:
    out.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


def main() -> int:
    _die_with_parent()
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but results on the pipe
    try:
        config: LoaderConfig = pickle.load(inp)
    except EOFError:
        return 0
    try:
        if config.nice:
            os.nice(config.nice)
    except (OSError, ValueError):
        pass
    chunker = Chunker.for_model(config.model_path, config.window)
    limits.limit_memory(config.memory_mb)  # after the tokenizer: the limit is for what a file makes us hold
    _send(out, READY)
    while True:
        try:
            job: FileJob | None = pickle.load(inp)
        except EOFError:
            return 0
        if job is None:
            return 0
        limits.arm_cpu(config.cpu_seconds)  # this file's CPU time from now on
        result = prepare(job, chunker, config, note=lambda page: _send(out, page))
        if isinstance(result, Loaded):
            result.document.blocks = []  # the parent needs kind, pages and contents pages only
        try:
            _send(out, result)
        except (BrokenPipeError, OSError):
            return 0


if __name__ == "__main__":
    sys.exit(main())
