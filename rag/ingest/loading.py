"""Load + chunk one file (``prepare``): the same step in a loader process (``worker.py``) and in the
loader thread of the pool (``pool.py``). In a loader process a ``MemoryError`` is the file needing more
than the process's memory limit (``limits``) and is reported as such; in a thread (no limit can apply to
one file there) it is reported as the server running out of memory for that file."""
from __future__ import annotations

import hashlib
from typing import Callable

from rag.ingest import loaders
from rag.ingest.chunking import Chunker
from rag.ingest.loaders.errors import MemoryLimit
from rag.ingest.records import FileFailed, FileJob, Loaded, LoaderConfig, LoadResult, OcrPage, Unchanged

Note = Callable[[OcrPage], None]  # told before each page a loader reads by OCR


def file_hash(data: bytes) -> str:
    """The content hash the manifest keeps for a file."""
    return hashlib.sha256(data).hexdigest()


def prepare(job: FileJob, chunker: Chunker, config: LoaderConfig, note: Note | None = None) -> LoadResult:
    """Load + chunk one file. Never raises: a bad file (or a loader bug) is a ``FileFailed``. ``note``
    hears of each page read by OCR (an ``OcrPage``) while the file loads."""
    path = job.path
    progress = None if note is None else (lambda page, step, steps: note(OcrPage(str(path), page, step, steps)))
    try:
        if err := loaders.too_large(path, job.size, config.max_file_mb):
            raise err
        data = path.read_bytes()
        h = file_hash(data)
        if job.known_hash and job.known_hash == h:
            return Unchanged(job, h)
        doc = loaders.load(path, config.max_file_mb, data=data, ocr=config.ocr, progress=progress)
        drafts = chunker.chunk(doc)
        if not drafts:
            raise loaders.EmptyFile(path)
        return Loaded(job, h, doc, drafts)
    except loaders.LoaderError as exc:
        return FileFailed(job, str(exc))
    except MemoryError:  # past the loader process's memory limit (what it held is freed on the way out)
        if config.memory_mb:
            return FileFailed(job, str(MemoryLimit(path, config.memory_mb)))
        return FileFailed(job, f"{path.name}: ran out of memory while reading it")
    except OSError as exc:
        return FileFailed(job, f"{path.name}: {exc.strerror or exc}")
    except Exception as exc:  # a loader bug must not stop the batch
        return FileFailed(job, f"{path.name}: could not be read ({type(exc).__name__}: {exc})")
