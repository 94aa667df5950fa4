"""The persistent index: chunk vectors + chunk metadata + the manifest of indexed files, in one
SQLite database (WAL mode) under the index folder.

Why SQLite: every write is a transaction, so a process killed in the middle of indexing leaves
the last committed state intact (files are committed whole: a file's old chunks, new chunks,
vectors and manifest row change together or not at all). Several readers (chats, other
processes) may read while one writer writes. The FAISS index is built in memory from the stored
vectors on load (100k x 384 floats load in well under a second) and kept up to date by the
library; a ``generation`` counter tells a reader that another process changed the index.

Tables: ``meta`` (schema version, embedding model id, generation), ``files`` (the manifest: path,
display name, content hash, size, mtime, chunk count, pages, contents pages skipped, owner),
``chunks`` (id, path, page, offsets, heading, context prefix, text, tokens, vector) and
``pending`` (files a run planned and has not finished: what an interrupted run left out, with their
owner, so a file indexed again keeps it).

``owner``: the user a chat upload belongs to (``rag.owners``), NULL for a shared file. A store made
before owners were recorded gets the column in place, filled once from its upload paths
(``rag.owners.legacy_owner``).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.base import ErrorCategory
from rag.dbfile import use_wal
from rag.owners import legacy_owner
from rag.schema import Chunk, with_context

SCHEMA_VERSION = "2"
DB_NAME = "library.sqlite3"


class StoreError(RuntimeError):
    """The library's storage cannot do what was asked; the message is a sentence to show. Its
    ``category`` (engines.base.ErrorCategory) says whether trying again later can help: a database that
    is down (unavailable) or slow (timeout) may come back; another model, a newer schema or a missing
    pgvector wait for someone to act (internal)."""

    category = ErrorCategory.INTERNAL


class StoreUnavailable(StoreError):
    """The library's database cannot be reached (down, wrong address, connection lost): asking again
    once it is back works (/v1: 503)."""

    category = ErrorCategory.UNAVAILABLE


class StoreTimeout(StoreError):
    """The library's database did not answer in time (its statement timeout): a busy or locked database
    may answer the next time (/v1: 504)."""

    category = ErrorCategory.TIMEOUT


class ModelMismatch(StoreError):
    """A shared library holds vectors of another embedding model than the one configured: someone must
    configure the model or rebuild the library (`rag index --rebuild`)."""


@dataclass
class FileEntry:
    path: str
    display_name: str
    hash: str
    size: int
    mtime_ns: int
    chunks: int
    kind: str = ""
    pages: int = 0
    contents_pages: list[int] = field(default_factory=list)
    indexed_at: float = 0.0
    owner: str | None = None  # the user whose upload it is (rag.owners); None: shared

    @property
    def name(self) -> str:
        return self.display_name or Path(self.path).name


@dataclass
class FileCommit:
    """One file's new state: its manifest row and its chunks with their vectors."""

    path: str
    display_name: str
    hash: str
    size: int
    mtime_ns: int
    kind: str
    pages: int
    contents_pages: list[int]
    drafts: list  # rag.ingest.chunking.ChunkDraft
    vectors: np.ndarray  # (sum of len(d.views), dim) float32: each draft's view vectors in order
    owner: str | None = None  # the user whose upload it is (rag.owners); None: shared


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, display_name TEXT, hash TEXT, size INTEGER, mtime_ns INTEGER,
    chunks INTEGER, kind TEXT, pages INTEGER, contents_pages TEXT, indexed_at REAL, owner TEXT DEFAULT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, page INTEGER,
    start INTEGER, "end" INTEGER, heading TEXT, context TEXT, text TEXT NOT NULL,
    tokens INTEGER, views INTEGER NOT NULL DEFAULT 1, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE TABLE IF NOT EXISTS pending (path TEXT PRIMARY KEY, planned_at REAL, owner TEXT DEFAULT NULL)
"""
_FILE_COLS = "path, display_name, hash, size, mtime_ns, chunks, kind, pages, contents_pages, indexed_at, owner"


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store's database file as every user of it opens one (WAL, autocommit: each
    transaction begun explicitly); ``rag.jobs.sqlite`` keeps the job queue in the same file."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Store:
    def __init__(self, index_dir: str | Path):
        self.dir = Path(index_dir).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / DB_NAME
        self._local = threading.local()
        with self._tx() as c:
            has_meta = c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            old = c.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if has_meta else None
            if old and old[0] != SCHEMA_VERSION:
                # an index from another version of this code: keep the file list (as pending, to be
                # indexed again by `index --resume` or the next ingest), drop the rest
                files = c.execute("SELECT path FROM files").fetchall()
                for table in ("chunks", "files", "pending", "meta"):
                    c.execute(f"DROP TABLE IF EXISTS {table}")
                c.execute("CREATE TABLE pending (path TEXT PRIMARY KEY, planned_at REAL)")
                c.executemany("INSERT OR IGNORE INTO pending VALUES (?, ?)", [(f[0], time.time()) for f in files])
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            _add_owners(c)
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            return False

    def _tx(self):
        return self._Tx(self._conn())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ meta
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        """Remember a small fact about this library (e.g. that the user removed the bundled guide)."""
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def generation(self) -> int:
        return int(self.meta("generation", "0"))

    @staticmethod
    def _bump(c) -> int:
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        return int(c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def model_id(self) -> str | None:
        return self.meta("model")

    def set_model(self, model_id: str) -> int:
        """Record the embedding model. If another model made the stored vectors, every file is
        dropped and put back as pending (to be embedded again): vectors are never mixed."""
        with self._tx() as c:
            old = c.execute("SELECT value FROM meta WHERE key='model'").fetchone()
            if old and old[0] != model_id:
                now = time.time()
                c.execute("INSERT OR IGNORE INTO pending (path, planned_at, owner) SELECT path, ?, owner FROM files",
                          (now,))
                c.execute("DELETE FROM chunks")
                c.execute("DELETE FROM files")
            c.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model_id,))
            return self._bump(c)

    # ------------------------------------------------------------------ manifest
    @staticmethod
    def _entry(row) -> FileEntry:
        return FileEntry(row[0], row[1] or "", row[2] or "", int(row[3] or 0), int(row[4] or 0), int(row[5] or 0),
                         row[6] or "", int(row[7] or 0), json.loads(row[8] or "[]"), float(row[9] or 0), row[10])

    def files(self) -> dict[str, FileEntry]:
        rows = self._conn().execute(f"SELECT {_FILE_COLS} FROM files ORDER BY path").fetchall()
        return {r[0]: self._entry(r) for r in rows}

    def owners(self) -> dict[str, str]:
        """Path -> owner of every file the library records an owner for (indexed or pending); the files
        left out are shared."""
        rows = self._conn().execute(
            "SELECT path, owner FROM pending WHERE owner IS NOT NULL UNION ALL "
            "SELECT path, owner FROM files WHERE owner IS NOT NULL").fetchall()
        return dict(rows)  # the manifest's row (last) wins over a pending mark

    def counts(self) -> tuple[int, int]:
        c = self._conn()
        return (c.execute("SELECT COUNT(*) FROM files").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def pending(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT path FROM pending ORDER BY path")]

    def add_pending(self, paths: list[str], owners: dict[str, str] | None = None) -> None:
        """Mark files as planned; ``owners``: path -> owner of those that are a user's upload."""
        if not paths:
            return
        now = time.time()
        owners = owners or {}
        with self._tx() as c:
            c.executemany("INSERT OR REPLACE INTO pending (path, planned_at, owner) VALUES (?, ?, ?)",
                          [(p, now, owners.get(p)) for p in paths])

    def clear_pending(self, paths: list[str]) -> None:
        if not paths:
            return
        with self._tx() as c:
            c.executemany("DELETE FROM pending WHERE path=?", [(p,) for p in paths])

    def touch(self, path: str, size: int, mtime_ns: int, display_name: str | None = None) -> None:
        """Same content, new mtime: remember the new stat so the fast path sees it next time."""
        with self._tx() as c:
            c.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))
            if display_name:
                c.execute("UPDATE files SET display_name=? WHERE path=?", (display_name, path))
            c.execute("DELETE FROM pending WHERE path=?", (path,))

    # ------------------------------------------------------------------ writes
    def commit(self, items: list[FileCommit]) -> tuple[int, int, list[int], list[tuple[list[int], list[int]]]]:
        """Replace each file's chunks in ONE transaction. Returns (generation before, after,
        removed chunk ids, [(new ids, row indexes into the item's drafts)...] per item)."""
        removed: list[int] = []
        added: list[tuple[list[int], list[int]]] = []
        now = time.time()
        with self._tx() as c:
            before = int(c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
            for it in items:
                old = [r[0] for r in c.execute("SELECT id FROM chunks WHERE path=?", (it.path,))]
                removed.extend(old)
                c.execute("DELETE FROM chunks WHERE path=?", (it.path,))
                ids: list[int] = []
                vecs = np.ascontiguousarray(it.vectors, dtype=np.float32)
                row = 0
                for d in it.drafts:
                    nv = max(1, len(d.views))
                    prefix = d.embed_text[: len(d.embed_text) - len(d.text)].rstrip("\n")
                    cur = c.execute(
                        'INSERT INTO chunks (path, page, start, "end", heading, context, text, tokens, views, vector) '
                        "VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (it.path, d.page, d.start, d.end, d.heading, prefix, d.text, d.tokens, nv,
                         vecs[row:row + nv].tobytes()))
                    row += nv
                    ids.append(cur.lastrowid)
                added.append((ids, list(range(len(ids)))))
                c.execute(f"INSERT OR REPLACE INTO files ({_FILE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                          (it.path, it.display_name, it.hash, it.size, it.mtime_ns, len(ids), it.kind, it.pages,
                           json.dumps(it.contents_pages), now, it.owner))
                c.execute("DELETE FROM pending WHERE path=?", (it.path,))
            after = self._bump(c)
        return before, after, removed, added

    def remove(self, paths: list[str]) -> tuple[int, int, list[int]]:
        """Drop files and their chunks. Returns (generation before, after, removed chunk ids)."""
        removed: list[int] = []
        with self._tx() as c:
            before = int(c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
            for p in paths:
                removed.extend(r[0] for r in c.execute("SELECT id FROM chunks WHERE path=?", (p,)))
                c.execute("DELETE FROM chunks WHERE path=?", (p,))
                c.execute("DELETE FROM files WHERE path=?", (p,))
                c.execute("DELETE FROM pending WHERE path=?", (p,))
            after = self._bump(c)
        return before, after, removed

    # ------------------------------------------------------------------ reads
    def load_all(self, dim: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(generation, chunk ids, view vectors, owner chunk id of each vector, lexical texts),
        read in one snapshot."""
        c = self._conn()
        c.execute("BEGIN")
        try:
            gen = int(c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
            rows = c.execute("SELECT id, views, vector, context, text FROM chunks ORDER BY id").fetchall()
        finally:
            c.execute("COMMIT")
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        owners = np.repeat(ids, [int(r[1] or 1) for r in rows]) if rows else np.zeros(0, dtype=np.int64)
        if rows:
            vecs = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
            if vecs.size != len(owners) * dim:
                raise ValueError(f"stored vectors do not have the model's {dim} dimensions")
            vecs = vecs.reshape(len(owners), dim)
        else:
            vecs = np.zeros((0, dim), dtype=np.float32)
        texts = [with_context(r[3], r[4]) for r in rows]
        return gen, ids, vecs, owners, texts

    def chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        c = self._conn()
        out: dict[int, Chunk] = {}
        for i in range(0, len(ids), 500):
            part = [int(x) for x in ids[i:i + 500]]
            q = ('SELECT c.id, c.text, c.path, c.page, c.start, c."end", c.heading, f.display_name, c.context '
                 "FROM chunks c LEFT JOIN files f ON f.path = c.path WHERE c.id IN (%s)" % ",".join("?" * len(part)))
            for r in c.execute(q, part):
                out[r[0]] = Chunk(id=r[0], text=r[1], source=r[2], page=r[3], start=r[4] or 0, end=r[5] or 0,
                                  heading=r[6] or "", doc_id=r[7] or Path(r[2]).name, context=r[8] or "")
        return out

    def chunk_ids(self, paths: list[str]) -> list[int]:
        """The chunk ids of these files (indexed paths)."""
        c = self._conn()
        out: list[int] = []
        for i in range(0, len(paths), 500):
            part = [str(p) for p in paths[i:i + 500]]
            q = "SELECT id FROM chunks WHERE path IN (%s)" % ",".join("?" * len(part))
            out += [r[0] for r in c.execute(q, part)]
        return out

    def chunk_tokens(self) -> list[int]:
        return [r[0] for r in self._conn().execute("SELECT tokens FROM chunks")]

    def file_rows(self, path: str, dim: int) -> tuple[list[dict], np.ndarray]:
        """One file's chunks as stored (page, start, end, heading, context, text, tokens, views) and their
        view vectors in order: what ``rag.backends.migrate`` copies to another store without re-embedding."""
        rows = self._conn().execute(
            'SELECT page, start, "end", heading, context, text, tokens, views, vector FROM chunks WHERE path=? '
            "ORDER BY id", (path,)).fetchall()
        keys = ("page", "start", "end", "heading", "context", "text", "tokens", "views")
        vecs = np.frombuffer(b"".join(r[8] for r in rows), dtype=np.float32).reshape(-1, dim)
        return [dict(zip(keys, r[:8])) for r in rows], vecs


def _add_owners(c) -> None:
    """Migrate a store made before owners were recorded, in place: an ``owner`` column (NULL: shared) on
    ``files`` and ``pending``, filled once for the uploads the path rule says were a user's."""
    for table in ("files", "pending"):
        if any(col[1] == "owner" for col in c.execute(f"PRAGMA table_info({table})")):
            continue
        c.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT DEFAULT NULL")
        rows = [(legacy_owner(p), p) for (p,) in c.execute(f"SELECT path FROM {table}").fetchall()]
        c.executemany(f"UPDATE {table} SET owner=? WHERE path=?", [r for r in rows if r[0]])
