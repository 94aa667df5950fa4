"""The PostgreSQL backend: ``PgStore`` for storage, the search in SQL, the fusion of ``rag.search.fusion``.

Dense: the HNSW index (``<#>``, inner product of normalised vectors) gives the best views; a passage
scores as its best view, as in ``rag.search.dense``. Lexical: PostgreSQL full text search over the
generated ``tsv`` column (english configuration; the question's words OR-ed), scored by ``ts_rank``
normalised by document length. When the planner's statistics say the OR would match more than
``LEXICAL_BUDGET`` passages, only a bounded pre-filter is ranked: the passages holding ALL the words plus
those holding the rarest words (each part at most ``LEXICAL_BUDGET`` rows; measured in docs/BENCHMARKS.md:
ranking every match of a common word read a quarter of a 100k library). Hybrid: the top ``CANDIDATES`` of each side in one statement, each
candidate with both scores (its dense score computed exactly from its stored views), fused in Python
by ``fusion.fused_top``, the same function as the embedded backend's. A scope (``allowed``) scores
every allowed passage exactly and ranks with ``fusion.rank_scored``.

Nothing is held in memory: a file another instance committed or removed is seen by the next query.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable

import numpy as np

from rag.backends.pg_store import PgStore
from rag.config import settings
from rag.backends import stored_model_is
from rag.embedder import Embedder
from rag.schema import Mode
from rag.search import fusion
from rag.search.lexical import tokenize
from rag.store import FileCommit, ModelMismatch

_WORD = re.compile(r"[A-Za-z0-9_]+")
_TSQ = "%(t)s::tsquery"  # the question's lexemes, OR-ed (PgBackend._lexical)
COMMON = 0.05  # a word in more than this share of passages is left out of the lexical query (see _lexical)
_STATS_S = 60.0  # how long the planner's word frequencies are reused
_DENSE_OF = "(SELECT max(-(v.embedding <#> %(q)s)) FROM lrc_vectors v WHERE v.chunk_id = c.id)"
_LEX_OF = f"CASE WHEN c.tsv @@ {_TSQ} THEN ts_rank(c.tsv, {_TSQ}, 1) ELSE 0 END"
_BEST_VIEWS = ("SELECT chunk_id, -(embedding <#> %(q)s) AS s FROM lrc_vectors ORDER BY embedding <#> %(q)s "
               "LIMIT %(m)s")
_DENSE_TOP = f"SELECT chunk_id, max(s) FROM ({_BEST_VIEWS}) dv GROUP BY chunk_id ORDER BY 2 DESC, 1 LIMIT %(n)s"
LEXICAL_BUDGET = 3000  # passages ranked at most per pre-filter part when the OR would match more (see _lexical)
# the passages the lexical side ranks: every match of the OR, or (a common-word question in a large library)
# at most LEXICAL_BUDGET holding all its words plus at most LEXICAL_BUDGET holding its rarest words
_MATCHES = "c.tsv @@ " + _TSQ
_BOUNDED = ("c.id IN (SELECT id FROM (SELECT id FROM lrc_chunks WHERE tsv @@ %(all)s::tsquery LIMIT %(b)s) a "
            "UNION ALL SELECT id FROM (SELECT id FROM lrc_chunks WHERE tsv @@ %(rare)s::tsquery LIMIT %(b)s) r)")
_LEXICAL_TOP = (f"SELECT c.id, ts_rank(c.tsv, {_TSQ}, 1) FROM lrc_chunks c WHERE {{where}} "
                "ORDER BY 2 DESC, 1 LIMIT %(n)s")
_HYBRID = f"""
WITH d AS (SELECT chunk_id AS id FROM ({_BEST_VIEWS}) dv GROUP BY chunk_id ORDER BY max(s) DESC LIMIT %(n)s),
     l AS (SELECT c.id FROM lrc_chunks c WHERE {{where}} ORDER BY ts_rank(c.tsv, {_TSQ}, 1) DESC LIMIT %(n)s),
     cand AS (SELECT id FROM d UNION SELECT id FROM l)
SELECT c.id, {_DENSE_OF}, {_LEX_OF} FROM lrc_chunks c JOIN cand USING (id) ORDER BY c.id"""


def tsquery_text(query: str) -> str:
    """Words as a to_tsquery('english', ...) OR of them (each quoted: PostgreSQL stems them and drops stop
    words); "" when there are none."""
    words = dict.fromkeys(w.lower() for w in _WORD.findall(query or "") if w.strip("_"))
    return " | ".join(f"'{w}'" for w in words)


def _scored(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunk ids, dense scores, lexical scores) of result rows (id, dense or NULL, lexical)."""
    return (np.asarray([r[0] for r in rows], dtype=np.int64),
            np.asarray([-1.0 if r[1] is None else r[1] for r in rows], dtype=np.float32),
            np.asarray([r[2] for r in rows], dtype=np.float32))


class PgBackend:
    """``rag.backends.Backend`` over PostgreSQL (``LRC_STORE=postgresql://...``)."""

    def __init__(self, uri: str, embed_model: str, embedder: Callable[[], Embedder],
                 timeout: float | None = None):
        self.store = PgStore(uri, settings().store_timeout if timeout is None else timeout)
        self.location = self.store.location
        self.embed_model = embed_model
        self._embedder = embedder
        self._lock = threading.Lock()
        self._model_id: str | None = None  # the configured model's id, once checked against the store's
        self._common: tuple[float, tuple] = (0.0, ({}, 0.0, 0.0))  # (read at, PgBackend._stats)

    # ------------------------------------------------------------------ the model
    def model_known(self) -> bool:
        return stored_model_is(self.store, self.embed_model)

    def ensure_model(self) -> None:
        if self._model_id is None and not self.model_known():
            self.load()

    def load(self) -> None:
        """The embedding model loaded and checked: a new library records it; a library of another model
        is ``ModelMismatch`` (a shared library is never emptied by one misconfigured instance)."""
        with self._lock:
            if self._model_id is not None:
                return
            embedder = self._embedder()
            if not self.store.model_id() or self.store.dim is None:
                self.store.set_model(embedder.model_id, embedder.dim)
            self.store.check_model(embedder.model_id)
            self._model_id = embedder.model_id

    def rebuild(self) -> None:
        """On request: drop the vectors of another model (their files become pending) and record this one."""
        with self._lock:
            embedder = self._embedder()
            self.store.set_model(embedder.model_id, embedder.dim)
            self._model_id = embedder.model_id

    # ------------------------------------------------------------------ writes
    def commit(self, commits: list[FileCommit]) -> None:
        self.load()
        try:
            self.store.commit(commits, self._model_id)
        except ModelMismatch:  # another instance rebuilt the library with another model meanwhile
            self._model_id = None
            raise

    def remove(self, paths: list[str]) -> int:
        return self.store.remove(paths)

    # ------------------------------------------------------------------ search
    def rank(self, query_vec: np.ndarray | None, query: str, k: int, mode: Mode,
             allowed: np.ndarray | None = None) -> list[tuple[int, float, dict]]:
        mode = Mode.parse(mode, search_only=True)
        if k <= 0:
            return []
        self.load()
        q = None if query_vec is None else np.asarray(query_vec, dtype=np.float32).ravel()
        where, lex = self._lexical(query) if mode != Mode.DENSE else (_MATCHES, {"t": ""})
        t = lex["t"]
        if allowed is not None:
            return self._rank_within(np.unique(np.asarray(allowed, dtype=np.int64)), q, t, k, mode)
        n = max(fusion.CANDIDATES, k) if mode == Mode.HYBRID else k
        if mode == Mode.LEXICAL:
            rows = self._query(_LEXICAL_TOP.format(where=where), {**lex, "n": k}) if t else []
            return [(int(i), float(s), {"lexical": float(s)}) for i, s in rows]
        params = {**lex, "q": q, "n": n, "m": 2 * n + 8}
        if mode == Mode.DENSE or not t:
            rows = self._query(_DENSE_TOP, params, dense=True)
            if mode == Mode.DENSE:
                return [(int(i), float(s), {"dense": float(s)}) for i, s in rows]
            rows = [(i, s, 0.0) for i, s in rows]  # hybrid with no words to search: the dense side alone
        else:
            rows = self._query(_HYBRID.format(where=where), params, dense=True)
        if not rows:
            return []
        return fusion.fused_top(*_scored(rows), k)

    def _stats(self) -> tuple[dict[str, float], float, float]:
        """(lexeme -> share of passages for the common ones, a share below every listed one, passages): the
        planner's statistics of the tsv column (autovacuum keeps them), read again after ``_STATS_S``."""
        read_at, stats = self._common
        if time.monotonic() - read_at > _STATS_S:
            row = self.store.read(lambda c: c.execute(
                "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, t.reltuples FROM pg_class t "
                "LEFT JOIN pg_stats s ON s.schemaname = t.relnamespace::regnamespace::text AND s.tablename = "
                "t.relname AND s.attname = 'tsv' WHERE t.oid = 'lrc_chunks'::regclass").fetchone())
            elems, freqs, rows = (row or (None, None, 0))
            common = dict(zip(elems, freqs)) if elems else {}
            floor = float(freqs[len(elems)]) if elems and len(freqs) > len(elems) else 0.0
            stats = (common, floor, max(0.0, float(rows or 0)))
            self._common = (time.monotonic(), stats)
        return stats

    def _lexical(self, query: str) -> tuple[str, dict]:
        """(which passages the lexical side ranks, the statement's parameters: ``t``, the ranking query).

        The ranking query: the question's words, but those in more than ``COMMON`` of the passages left out
        unless nothing else is left. ``ts_rank`` has no inverse document frequency, and ranking every passage
        holding "use" or "python" costs a read of each: BM25 gives such words almost no weight, so the ranking
        loses little. When the words would still match more than ``LEXICAL_BUDGET`` passages (by the
        statistics; a word not listed counts as half the rarest listed share), only a bounded pre-filter is
        ranked: up to ``LEXICAL_BUDGET`` passages holding all the words, and up to ``LEXICAL_BUDGET`` holding
        the rarest ones (rarest first until their estimated matches reach the budget): what ranks high in
        BM25. A small library (or one never analysed) is always ranked in full."""
        if not tsquery_text(query):
            return _MATCHES, {"t": ""}
        common, floor, rows = self._stats()
        lexemes = [x for (x,) in self.store.read(lambda c: c.execute(
            "SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (query,)).fetchall())]
        share = {x: common.get(x, floor / 2) for x in lexemes}
        rare = [x for x in lexemes if share[x] <= COMMON]
        keep = sorted(rare or sorted(lexemes, key=share.get)[:2], key=lambda x: (share[x], x))
        quoted = ["'" + x.replace("'", "''") + "'" for x in keep]
        params = {"t": " | ".join(quoted)}
        if not keep or sum(share[x] for x in keep) * rows <= LEXICAL_BUDGET:
            return _MATCHES, params
        n, est = 0, 0.0
        while n < len(keep) and est < LEXICAL_BUDGET:
            est += share[keep[n]] * rows
            n += 1
        return _BOUNDED, {**params, "all": " & ".join(quoted), "rare": " | ".join(quoted[:n]), "b": LEXICAL_BUDGET}

    def _rank_within(self, allowed: np.ndarray, q, t: str, k: int, mode: Mode) -> list[tuple[int, float, dict]]:
        if len(allowed) == 0:
            return []
        dense = _DENSE_OF if mode != Mode.LEXICAL else "NULL"
        lexical = _LEX_OF if mode != Mode.DENSE and t else "0"
        rows = self._query(f"SELECT c.id, {dense}, {lexical} FROM lrc_chunks c WHERE c.id = ANY(%(ids)s) ORDER BY c.id",
                           {"q": q, "t": t, "ids": allowed.tolist()})
        return fusion.rank_scored(*_scored(rows), k, mode)

    def _query(self, sql: str, params: dict, dense: bool = False) -> list[tuple]:
        """One search statement; an HNSW search runs with ``hnsw.ef_search`` at least the views it needs."""
        ef = min(1000, max(int(settings().store_ef_search), int(params.get("m", 0))))

        def run(conn):
            with conn.transaction():  # one search, no parallel workers (their start-up is not worth it here)
                conn.execute("SET LOCAL max_parallel_workers_per_gather = 0" +
                             (f"; SET LOCAL hnsw.ef_search = {ef}" if dense else ""))
                return conn.execute(sql, params).fetchall()

        return self.store.read(run, "could not be searched")

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of ``text`` (``rag.search.lexical.tokenize``'s) whose word no passage holds (full text search)."""
        out: list[str] = []
        for word in dict.fromkeys(_WORD.findall(text or "")):
            terms, t = tokenize(word), tsquery_text(word)
            if not terms or terms[0] in out:
                continue
            found = t and self.store.read(lambda c: c.execute(
                "SELECT EXISTS (SELECT 1 FROM lrc_chunks c WHERE c.tsv @@ to_tsquery('english', %(t)s))",
                {"t": t}).fetchone()[0],
                "could not be searched")
            if not found:
                out.append(terms[0])
        return out

    def close(self) -> None:
        self.store.close()
