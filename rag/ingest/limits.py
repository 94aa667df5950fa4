"""The loader processes' resource limits: a hostile file fails alone instead of filling the memory or a core.

- Memory: ``RLIMIT_DATA`` (``LRC_LOADER_MEMORY_MB``), set once in each loader process after its tokenizer is
  loaded. It counts the heap and anonymous mappings (what a parser grows) and not the address space that
  shared libraries and glibc's per-thread malloc arenas reserve, which ``RLIMIT_AS`` would count and which
  has nothing to do with the file (measured: a loader process holds ~115 MiB of data and ~185 MiB of
  address space once ready; the largest shipped PDF manual, R-exts, peaks at ~165 MiB of data). An
  allocation past it fails: Python raises ``MemoryError`` (reported as ``MemoryLimit``, the process goes on
  with the next file); C code that cannot handle the failure aborts, and the pool names the file and
  replaces the process. The OCR commands a loader runs (pdftoppm, tesseract) inherit the limit.
- CPU: ``RLIMIT_CPU``'s soft limit re-armed before each file to the CPU time used so far plus
  ``LRC_LOADER_CPU_SECONDS``: past it the kernel ends the process with SIGXCPU (a loop in C code cannot
  ignore it), and the pool reports ``CpuLimit`` for the file and starts a new process. CPU time, not wall
  time: a loader stopped while the model computes (``pool.LoaderPool.paused``) uses none.

A loader thread (``LRC_INGEST_WORKERS=0``, or a small run of text files: at most 2 MB together) runs in the
server's own process, where a limit would apply to the whole server: there only the limits that live in the
loaders apply (the unzip caps, ``LRC_MAX_PAGES``, ``LRC_OCR_MAX_PIXELS``, the file size).
"""
from __future__ import annotations

import math
import signal
import time

from rag.ingest.loaders.errors import CpuLimit, MemoryLimit

MIB = 1024 * 1024


def limit_memory(mb: int) -> bool:
    """This process may hold at most ``mb`` MiB of data (0: no limit). False where it cannot be set."""
    if mb <= 0:
        return False
    try:
        import resource

        limit = mb * MIB
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort on a failed allocation leaves no core file
        return True
    except (ImportError, OSError, ValueError, AttributeError):
        return False


def arm_cpu(seconds: int) -> bool:
    """The next file may use ``seconds`` of CPU time in this process (0: no limit); SIGXCPU past it."""
    if seconds <= 0:
        return False
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = math.ceil(time.process_time()) + seconds
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        return True
    except (ImportError, OSError, ValueError, AttributeError):
        return False


def death_reason(name: str, code: int | None, memory_mb: int, cpu_seconds: int, how: str) -> str:
    """Why a loader process stopped while reading the file ``name``, for its FileFailed record: the CPU limit
    (SIGXCPU), an allocation that failed in C code under the memory limit (an abort or a crash), or only
    how it ended (``how``: "exit code 9")."""
    if code is not None and code == -signal.SIGXCPU and cpu_seconds > 0:
        return str(CpuLimit(name, cpu_seconds))
    crashed = code is not None and code in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGBUS)
    if crashed and memory_mb > 0:
        return (f"{name}: the loader process stopped while reading it ({how}); it most likely "
                + str(MemoryLimit(name, memory_mb)).split(": ", 1)[1])
    return f"{name}: the loader process stopped while reading it ({how})"
