"""Ingest: files -> loaders -> chunker -> embedder -> store and search index.

``Ingester`` runs it (``ingester.py``), with a pool of loader processes (``pool.py``, ``worker.py``);
``loaders/`` turns a file into a ``Document``, ``chunking.py`` a Document into passages; the
records passed between the stages are in ``records.py``.
"""
from rag.ingest.chunking import ChunkDraft, Chunker
from rag.ingest.ingester import Ingester, IndexWriter, Manifest, expand
from rag.ingest.records import (FileFailed, FileJob, IngestProgress, IngestReport, Loaded, LoaderConfig, LoadResult,
                                Unchanged)
from rag.ingest.loading import file_hash, prepare

__all__ = ["Ingester", "IndexWriter", "Manifest", "IngestProgress", "IngestReport", "expand", "Chunker", "ChunkDraft",
           "FileJob", "LoaderConfig", "Loaded", "Unchanged", "FileFailed", "LoadResult", "file_hash", "prepare"]
