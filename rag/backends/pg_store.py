"""The library in PostgreSQL: manifest, passages and vectors in tables; the SQL behind ``PgBackend``.

Tables (created and migrated here, version in ``lrc_meta``):

- ``lrc_meta`` (key, value): schema version, embedding model id and dimension, small facts.
- ``lrc_files``: the manifest, one row per file (path is the key; the content hash and stat decide
  what an ingest skips), as ``rag.store.Store``'s ``files``; ``owner``: the user a chat upload belongs
  to (``rag.owners``), NULL for a shared file. Every instance on the library reads it, so they agree on
  who sees what.
- ``lrc_chunks``: passages (``UNIQUE (path, seq)``: a file's passages exist once), with their BM25 terms
  (``terms`` behind a GIN index, ``tfs``, ``dl``: ``rag.backends.pg_lexicon``): the lexical side.
- ``lrc_terms``: each term's document frequency, and the passage count and total length (``pg_lexicon``).
- ``lrc_vectors``: one row per embedded view (``vector(dim)``, an HNSW index for inner product on
  the normalised vectors): the dense side; created when the model (and so the dimension) is known.
- ``lrc_pending``: files a run planned and has not finished (with their owner).

Schema versions: 1 had no owners; 2 adds ``owner`` to ``lrc_files`` and ``lrc_pending`` in place (NULL:
shared), filled once from the upload paths (``rag.owners.legacy_owner``); 3 replaces the generated english
``tsv`` column (ranked by ``ts_rank``, no idf) with the passages' own BM25 terms and ``lrc_terms``, filled
once from the stored texts. An app that knows only an older version refuses a newer library.

Writes: each batch of files is one transaction; each file takes a transaction-scoped advisory lock on
its path first (in path order: no deadlock), so two instances committing the same file serialise and
the second replaces the first's passages instead of adding to them. Connections: one per thread,
made again after a loss; every statement has ``statement_timeout`` (``LRC_STORE_TIMEOUT``).
Errors become ``rag.store.StoreError``s with a sentence to show.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.types import TypeInfo

from rag.backends import pg_lexicon as lexicon
from rag.owners import legacy_owner
from rag.schema import Chunk, with_context
from rag.store import FileCommit, FileEntry, ModelMismatch, StoreError, StoreTimeout, StoreUnavailable

SCHEMA_VERSION = 3
MIN_SERVER = 150000  # PostgreSQL 15
MIN_PGVECTOR = (0, 5)  # HNSW
# the HNSW graph (measured in docs/BENCHMARKS.md: at 100k passages m=16, ef_construction=64 left recall@10 at
# 0.83 with ef_search 200; this needs ef_search 400 for 0.95); an existing library keeps the index it was built with
HNSW_M = 24
HNSW_EF_CONSTRUCTION = 128
_SCHEMA_LOCK = 0x4C524301  # advisory lock held while the schema is created or the model changes

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS lrc_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS lrc_files (
        path text PRIMARY KEY, display_name text, hash text, size bigint, mtime_ns bigint, chunks integer,
        kind text, pages integer, contents_pages text, indexed_at double precision, owner text)""",
    f"""CREATE TABLE IF NOT EXISTS lrc_chunks (
        id bigserial PRIMARY KEY, path text NOT NULL REFERENCES lrc_files(path) ON DELETE CASCADE,
        seq integer NOT NULL, page integer, start integer, "end" integer, heading text, context text,
        text text NOT NULL, tokens integer, views integer NOT NULL DEFAULT 1, {lexicon.COLUMNS},
        UNIQUE (path, seq))""",
    "CREATE TABLE IF NOT EXISTS lrc_pending (path text PRIMARY KEY, planned_at double precision, owner text)",
    lexicon.TABLE,
]
_OWNERS = [  # schema 1 -> 2
    "ALTER TABLE lrc_files ADD COLUMN IF NOT EXISTS owner text",
    "ALTER TABLE lrc_pending ADD COLUMN IF NOT EXISTS owner text",
]
_VECTORS = [
    """CREATE TABLE lrc_vectors (
        chunk_id bigint NOT NULL REFERENCES lrc_chunks(id) ON DELETE CASCADE, view smallint NOT NULL,
        embedding vector({dim}) NOT NULL, PRIMARY KEY (chunk_id, view))""",
    "CREATE INDEX lrc_vectors_hnsw ON lrc_vectors USING hnsw (embedding vector_ip_ops) "
    f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})",
]
_FILE_COLS = "path, display_name, hash, size, mtime_ns, chunks, kind, pages, contents_pages, indexed_at, owner"


def redact(uri: str) -> str:
    """The URI without its password (what messages and ``stats`` show)."""
    try:
        d = conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable address)"
    host = d.get("host") or "localhost"
    port = f":{d['port']}" if d.get("port") else ""
    user = f"{d['user']}@" if d.get("user") else ""
    return f"postgresql://{user}{host}{port}/{d.get('dbname') or ''}"


def _path_key(path: str) -> int:
    """A stable 64-bit advisory-lock key for a file path."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big", signed=True)


class PgStore:
    """``rag.backends.LibraryStore`` in PostgreSQL, plus the searches ``PgBackend`` runs."""

    def __init__(self, uri: str, timeout: float = 30.0):
        self.uri = uri
        self.location = redact(uri)
        self.timeout = float(timeout)
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._all_lock = threading.Lock()
        self._vector_info: TypeInfo | None = None
        self.dim: int | None = None
        with self.errors("could not be opened"):
            self._migrate()

    # ------------------------------------------------------------------ connections and errors
    def _connect(self) -> psycopg.Connection:
        ms = max(1, int(self.timeout * 1000)) if self.timeout > 0 else 0
        conn = psycopg.connect(self.uri, autocommit=True, connect_timeout=max(2, int(self.timeout) or 10),
                               options=f"-c statement_timeout={ms}", application_name="local-rag-chat")
        if self._vector_info is not None:
            from pgvector.psycopg.vector import register_vector_info

            register_vector_info(conn, self._vector_info)
        with self._all_lock:
            self._all.append(conn)
        return conn

    def conn(self) -> psycopg.Connection:
        """This thread's connection (made again when the last one was lost)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._local.conn = self._connect()
        return conn

    def _forget(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def errors(self, doing: str = "failed"):
        """Database errors as ``StoreError``s with a sentence to show (the connection is dropped after a
        loss, so the next call connects again)."""
        try:
            yield
        except errors.QueryCanceled as exc:
            raise StoreTimeout(f"The library's database ({self.location}) did not answer within "
                               f"{self.timeout:g} s (statement timeout, LRC_STORE_TIMEOUT); try again.") from exc
        except psycopg.OperationalError as exc:
            self._forget()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()
            raise StoreUnavailable(f"The library's database ({self.location}) {doing}: it is not reachable "
                                   f"({reason}). Check that PostgreSQL is running and LRC_STORE is right."
                                   ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"The library's database ({self.location}) {doing}: "
                             f"{type(exc).__name__}: {str(exc).strip()}") from exc

    def read(self, fn, doing: str = "could not be read"):
        """``fn(connection)`` for a read: once more on a new connection when this thread's was lost (the
        server restarted since), then a ``StoreError``. Writes are never repeated: a lost write is reported."""
        with self.errors(doing):
            try:
                return fn(self.conn())
            except psycopg.OperationalError as exc:
                if isinstance(exc, errors.QueryCanceled):
                    raise
                self._forget()
                return fn(self.conn())

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
        self._local = threading.local()

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        conn = self.conn()
        version = conn.info.server_version
        if version < MIN_SERVER:
            raise StoreError(f"The library's database ({self.location}) runs PostgreSQL {version // 10000}; "
                             "a shared library needs PostgreSQL 15 or newer with pgvector 0.5 or newer.")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._ensure_vector_extension(conn)
            for stmt in _SCHEMA:
                conn.execute(stmt)
            row = conn.execute("SELECT value FROM lrc_meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO lrc_meta VALUES ('schema', %s)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"The library's database ({self.location}) was set up by a newer version of "
                                 f"this app (schema {row[0]}, this one knows {SCHEMA_VERSION}): update the app.")
            elif int(row[0]) < SCHEMA_VERSION:  # each step in turn, from the stored version up
                if int(row[0]) < 2:
                    self._add_owners(conn)
                if int(row[0]) < 3:
                    lexicon.migrate(conn)
                conn.execute("UPDATE lrc_meta SET value = %s WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            conn.execute(lexicon.INDEX)
        self._vector_info = TypeInfo.fetch(conn, "vector")
        from pgvector.psycopg.vector import register_vector_info

        register_vector_info(conn, self._vector_info)
        dim = self.meta("dim")
        self.dim = int(dim) if dim else None

    @staticmethod
    def _add_owners(conn) -> None:
        """Schema 1 -> 2 (in the schema transaction): the owner columns, filled once for the uploads the
        path rule says were a user's (any instance's uploads folder: the paths are all here)."""
        for stmt in _OWNERS:
            conn.execute(stmt)
        for table in ("lrc_files", "lrc_pending"):
            paths = conn.execute(f"SELECT path FROM {table} WHERE path LIKE %s", ("%users%",)).fetchall()
            rows = [(legacy_owner(p), p) for (p,) in paths]
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {table} SET owner = %s WHERE path = %s", [r for r in rows if r[0]])

    def _ensure_vector_extension(self, conn) -> None:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if row is None:
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if available is None:
                raise StoreError(f"The library's database ({self.location}) has no pgvector extension: install "
                                 "pgvector 0.5 or newer on the PostgreSQL server (e.g. the postgresql-16-pgvector "
                                 "package), then start the app again.")
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except errors.InsufficientPrivilege:
                db = conninfo_to_dict(self.uri).get("dbname") or "the database"
                raise StoreError(f"The library's database ({self.location}) has pgvector installed but not "
                                 f"enabled, and this user may not enable it: ask an administrator to run "
                                 f"`CREATE EXTENSION vector;` in {db}.") from None
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        have = tuple(int(x) for x in row[0].split(".")[:2])
        if have < MIN_PGVECTOR:
            raise StoreError(f"The library's database ({self.location}) has pgvector {row[0]}; HNSW search needs "
                             "0.5 or newer (`ALTER EXTENSION vector UPDATE;` after upgrading the package).")

    def set_model(self, model_id: str, dim: int) -> None:
        """Record the embedding model. Vectors of another model are dropped (their files become pending,
        to be embedded again) and the vector column takes the model's dimension: never mixed."""
        conn = self.conn()
        with self.errors("could not record the embedding model"), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            old = conn.execute("SELECT value FROM lrc_meta WHERE key = 'model'").fetchone()
            has_table = conn.execute("SELECT to_regclass('lrc_vectors') IS NOT NULL").fetchone()[0]
            if old and old[0] == model_id and has_table:  # another instance recorded it meanwhile
                self.dim = int(conn.execute("SELECT value FROM lrc_meta WHERE key = 'dim'").fetchone()[0])
                return
            if old or has_table:
                conn.execute("INSERT INTO lrc_pending (path, planned_at, owner) SELECT path, %s, owner FROM lrc_files "
                             "ON CONFLICT (path) DO UPDATE SET owner = coalesce(EXCLUDED.owner, lrc_pending.owner)",
                             (time.time(),))
                conn.execute("DROP TABLE IF EXISTS lrc_vectors")
                conn.execute("DELETE FROM lrc_files")  # the passages go too, so their terms do
                conn.execute("DELETE FROM lrc_terms")
            for stmt in _VECTORS:
                conn.execute(stmt.format(dim=int(dim)))
            for key, value in (("model", model_id), ("dim", str(int(dim)))):
                conn.execute("INSERT INTO lrc_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                             "EXCLUDED.value", (key, value))
        self.dim = int(dim)

    def check_model(self, model_id: str) -> None:
        stored = self.model_id()
        if stored and stored != model_id:
            raise ModelMismatch(
                f"The shared library at {self.location} holds vectors of the embedding model "
                f"'{stored.split('|', 1)[0]}' ({self.meta('dim')} dimensions), but this app is configured with "
                f"'{model_id.split('|', 1)[0]}'. Set LRC_EMBED_MODEL to the library's model, or embed the "
                "whole library again with `python -m rag index --rebuild` (every instance must then use the "
                "new model).")

    # ------------------------------------------------------------------ meta and manifest
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.read(lambda c: c.execute("SELECT value FROM lrc_meta WHERE key = %s", (key,)).fetchone())
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.errors("could not be written"):
            self.conn().execute("INSERT INTO lrc_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
                                "value = EXCLUDED.value", (key, str(value)))

    def model_id(self) -> str | None:
        return self.meta("model")

    def files(self) -> dict[str, FileEntry]:
        rows = self.read(lambda c: c.execute(f"SELECT {_FILE_COLS} FROM lrc_files ORDER BY path").fetchall())
        return {r[0]: FileEntry(r[0], r[1] or "", r[2] or "", int(r[3] or 0), int(r[4] or 0), int(r[5] or 0),
                                r[6] or "", int(r[7] or 0), json.loads(r[8] or "[]"), float(r[9] or 0), r[10])
                for r in rows}

    def owners(self) -> dict[str, str]:
        """Path -> owner of every file the library records an owner for (indexed or pending); the files
        left out are shared."""
        return dict(self.read(lambda c: c.execute(
            "SELECT path, owner FROM lrc_pending WHERE owner IS NOT NULL UNION ALL "
            "SELECT path, owner FROM lrc_files WHERE owner IS NOT NULL").fetchall()))

    def counts(self) -> tuple[int, int]:
        row = self.read(lambda c: c.execute(
            "SELECT (SELECT count(*) FROM lrc_files), (SELECT count(*) FROM lrc_chunks)").fetchone())
        return int(row[0]), int(row[1])

    def pending(self) -> list[str]:
        return [r[0] for r in self.read(lambda c: c.execute("SELECT path FROM lrc_pending ORDER BY path").fetchall())]

    def add_pending(self, paths: list[str], owners: dict[str, str] | None = None) -> None:
        """Mark files as planned; ``owners``: path -> owner of those that are a user's upload."""
        if paths:
            owners = owners or {}
            with self.errors("could not be written"), self.conn().cursor() as cur:
                now = time.time()
                cur.executemany("INSERT INTO lrc_pending VALUES (%s, %s, %s) ON CONFLICT (path) DO UPDATE SET "
                                "planned_at = EXCLUDED.planned_at, owner = EXCLUDED.owner",
                                [(p, now, owners.get(p)) for p in paths])

    def clear_pending(self, paths: list[str]) -> None:
        if paths:
            with self.errors("could not be written"):
                self.conn().execute("DELETE FROM lrc_pending WHERE path = ANY(%s)", (list(paths),))

    def touch(self, path: str, size: int, mtime_ns: int, display_name: str | None = None) -> None:
        conn = self.conn()
        with self.errors("could not be written"), conn.transaction():
            conn.execute("UPDATE lrc_files SET size = %s, mtime_ns = %s, display_name = coalesce(%s, display_name) "
                         "WHERE path = %s", (size, mtime_ns, display_name or None, path))
            conn.execute("DELETE FROM lrc_pending WHERE path = %s", (path,))

    # ------------------------------------------------------------------ writes
    def commit(self, items: list[FileCommit], model_id: str) -> list[list[int]]:
        """Replace each file's passages and vectors in ONE transaction, made by ``model_id`` (checked in the
        transaction: vectors of two models are never mixed). Returns the new chunk ids per item."""
        if self.dim is None:
            raise StoreError("The library's embedding model is not recorded yet (load the library first).")
        conn = self.conn()
        new_ids: dict[str, list[int]] = {}
        now = time.time()
        delta = lexicon.Delta()
        with self.errors("lost this batch (nothing of it was saved)"), conn.transaction(), conn.cursor() as cur:
            row = cur.execute("SELECT value FROM lrc_meta WHERE key = 'model' FOR SHARE").fetchone()
            if not row or row[0] != model_id:
                self.check_model(model_id)
            for it in sorted(items, key=lambda c: c.path):
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_path_key(it.path),))
                cur.execute(
                    f"INSERT INTO lrc_files ({_FILE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (path) DO UPDATE SET display_name = EXCLUDED.display_name, hash = EXCLUDED.hash, "
                    "size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns, chunks = EXCLUDED.chunks, kind = "
                    "EXCLUDED.kind, pages = EXCLUDED.pages, contents_pages = EXCLUDED.contents_pages, "
                    "indexed_at = EXCLUDED.indexed_at, owner = EXCLUDED.owner",
                    (it.path, it.display_name, it.hash, it.size, it.mtime_ns, len(it.drafts), it.kind, it.pages,
                     json.dumps(it.contents_pages), now, it.owner))
                cur.execute("DELETE FROM lrc_chunks WHERE path = %s RETURNING terms, dl", (it.path,))  # vectors too
                delta.removed(cur.fetchall())
                ids = self._insert_chunks(cur, it, delta)
                new_ids[it.path] = ids
                views = [max(1, len(d.views)) for d in it.drafts]
                vecs = np.ascontiguousarray(it.vectors, dtype=np.float32)
                with cur.copy("COPY lrc_vectors (chunk_id, view, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int2", self._vector_info.oid])
                    row = 0
                    for cid, nv in zip(ids, views):
                        for j in range(nv):
                            copy.write_row((cid, j, vecs[row]))
                            row += 1
                cur.execute("DELETE FROM lrc_pending WHERE path = %s", (it.path,))
            delta.apply(cur)  # last, in term order (see pg_lexicon)
        return [new_ids[it.path] for it in items]

    @staticmethod
    def _insert_chunks(cur, it: FileCommit, delta: lexicon.Delta) -> list[int]:
        """The file's passages with their BM25 terms (of the text the embedded index reads: ``embed_text``)."""
        if not it.drafts:
            return []
        cols = list(zip(*[(i, d.page, d.start, d.end, d.heading,
                           d.embed_text[: len(d.embed_text) - len(d.text)].rstrip("\n"), d.text, d.tokens,
                           max(1, len(d.views))) for i, d in enumerate(it.drafts)]))
        terms, tfs, dls = lexicon.insert_columns([d.embed_text for d in it.drafts])
        for t, dl in zip(terms, dls):
            delta.add(t, dl)
        cur.execute(
            'INSERT INTO lrc_chunks (path, seq, page, start, "end", heading, context, text, tokens, views, terms, '
            "tfs, dl) SELECT %s, s, p, a, e, h, x, t, n, v, string_to_array(w, ' '), string_to_array(f, ' ')::int[], "
            "l FROM unnest(%s::int[], %s::int[], %s::int[], %s::int[], %s::text[], %s::text[], %s::text[], %s::int[], "
            "%s::int[], %s::text[], %s::text[], %s::int[]) u(s, p, a, e, h, x, t, n, v, w, f, l) RETURNING id, seq",
            (it.path, *[list(c) for c in cols], terms, tfs, dls))
        return [i for i, _ in sorted(cur.fetchall(), key=lambda r: r[1])]

    def remove(self, paths: list[str]) -> int:
        """Drop files with their passages and vectors (and pending marks). Returns passages removed."""
        conn = self.conn()
        delta = lexicon.Delta()
        with self.errors("could not remove files"), conn.transaction(), conn.cursor() as cur:
            for path in sorted(set(paths)):  # the commit's per-path locks, in the same order
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_path_key(path),))
            gone = cur.execute("DELETE FROM lrc_chunks WHERE path = ANY(%s) RETURNING terms, dl",
                               (list(paths),)).fetchall()
            delta.removed(gone)
            cur.execute("DELETE FROM lrc_files WHERE path = ANY(%s)", (list(paths),))
            cur.execute("DELETE FROM lrc_pending WHERE path = ANY(%s)", (list(paths),))
            delta.apply(cur)
        return len(gone)

    # ------------------------------------------------------------------ reads
    def chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        rows = self.read(lambda c: c.execute(
            'SELECT c.id, c.text, c.path, c.page, c.start, c."end", c.heading, f.display_name, c.context '
            "FROM lrc_chunks c LEFT JOIN lrc_files f ON f.path = c.path WHERE c.id = ANY(%s)",
            ([int(i) for i in ids],)).fetchall())
        return {r[0]: Chunk(id=r[0], text=r[1], source=r[2], page=r[3], start=r[4] or 0, end=r[5] or 0,
                            heading=r[6] or "", doc_id=r[7] or Path(r[2]).name, context=r[8] or "") for r in rows}

    def chunk_ids(self, paths: list[str]) -> list[int]:
        return [r[0] for r in self.read(lambda c: c.execute(
            "SELECT id FROM lrc_chunks WHERE path = ANY(%s) ORDER BY id", ([str(p) for p in paths],)).fetchall())]

    def chunk_tokens(self) -> list[int]:
        return [r[0] for r in self.read(lambda c: c.execute("SELECT tokens FROM lrc_chunks").fetchall())]

    def file_rows(self, path: str, dim: int) -> tuple[list[dict], np.ndarray]:
        """One file's passages as stored and their view vectors in order (``rag.backends.migrate``)."""
        keys = ("page", "start", "end", "heading", "context", "text", "tokens", "views")

        def both(conn):
            return (conn.execute('SELECT id, page, start, "end", heading, context, text, tokens, views FROM '
                                 "lrc_chunks WHERE path = %s ORDER BY seq", (path,)).fetchall(),
                    conn.execute("SELECT v.embedding FROM lrc_vectors v JOIN lrc_chunks c ON c.id = v.chunk_id "
                                 "WHERE c.path = %s ORDER BY c.seq, v.view", (path,)).fetchall())

        rows, vecs = self.read(both)
        out = np.asarray([v[0].to_numpy() for v in vecs], dtype=np.float32).reshape(-1, dim)
        return [dict(zip(keys, r[1:])) for r in rows], out

    def texts(self) -> list[str]:
        """Every passage's lexical text (prefix + text), for tests and benchmarks."""
        rows = self.read(lambda c: c.execute("SELECT context, text FROM lrc_chunks ORDER BY id").fetchall())
        return [with_context(r[0], r[1]) for r in rows]
