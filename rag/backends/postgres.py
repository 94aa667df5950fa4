"""The PostgreSQL backend: ``PgStore`` for storage, the search in SQL, the fusion of ``rag.search.fusion``.

Dense: the HNSW index (``<#>``, inner product of normalised vectors) gives the best views; a passage
scores as its best view, as in ``rag.search.dense``. Lexical: BM25 exactly as ``rag.search.lexical``
computes it (same terms, k1, b, idf and mean length: ``rag.backends.pg_lexicon``): the passages holding
a question's terms are found through the GIN index on their ``terms``, each scored in SQL from its own
term frequencies and length with the terms' idf read from ``lrc_terms``; ``unknown_terms`` is the same
rule as the embedded one (a term no passage holds). When the question's terms are held by more than
``LEXICAL_FULL`` passages (their document frequencies say so exactly), only a bounded pre-filter is
ranked: the passages holding ALL the terms plus those holding the rarest terms (each part at most
``LEXICAL_BUDGET`` rows; measured in docs/BENCHMARKS.md: ranking every match of a common word read a
quarter of a 100k library); the passages ranked get their exact scores. Hybrid: the top ``CANDIDATES``
of each side in one statement, each candidate with both scores (its dense score computed exactly from
its stored views), fused in Python by ``fusion.fused_top``, the same function as the embedded backend's.
A scope (``allowed``) scores every allowed passage exactly and ranks with ``fusion.rank_scored``.

Nothing is held in memory: a file another instance committed or removed is seen by the next query.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from rag.backends import stored_model_is
from rag.backends.pg_lexicon import SCORE, Lexicon
from rag.backends.pg_store import PgStore
from rag.config import settings
from rag.embedder import Embedder
from rag.schema import Mode
from rag.search import fusion
from rag.store import FileCommit, ModelMismatch

_DENSE_OF = "(SELECT max(-(v.embedding <#> %(q)s)) FROM lrc_vectors v WHERE v.chunk_id = c.id)"
_BEST_VIEWS = ("SELECT chunk_id, -(embedding <#> %(q)s) AS s FROM lrc_vectors ORDER BY embedding <#> %(q)s "
               "LIMIT %(m)s")
_DENSE_TOP = f"SELECT chunk_id, max(s) FROM ({_BEST_VIEWS}) dv GROUP BY chunk_id ORDER BY 2 DESC, 1 LIMIT %(n)s"
LEXICAL_FULL = 3000  # the terms held by at most this many passages: every holder is ranked (see _lexical)
LEXICAL_BUDGET = 1000  # else passages ranked at most per pre-filter part (measured in docs/BENCHMARKS.md)
COMMON = 0.05  # a term in more than this share of the passages is not rare (see _lexical)
# the passages the lexical side ranks: every one holding a term, or (a common-word question in a large library)
# at most LEXICAL_BUDGET holding all its terms plus at most LEXICAL_BUDGET holding its rarest terms
_MATCHES = "c.terms && %(qt)s::text[]"
_BOUNDED = ("c.id IN (SELECT id FROM (SELECT id FROM lrc_chunks WHERE terms @> %(qt)s::text[] LIMIT %(b)s) a "
            "UNION ALL SELECT id FROM (SELECT id FROM lrc_chunks WHERE terms && %(rare)s::text[] LIMIT %(b)s) r)")
_LEXICAL_TOP = f"SELECT c.id, {SCORE} FROM lrc_chunks c WHERE {{where}} ORDER BY 2 DESC, 1 LIMIT %(n)s"
_HYBRID = f"""
WITH d AS (SELECT chunk_id AS id FROM ({_BEST_VIEWS}) dv GROUP BY chunk_id ORDER BY max(s) DESC LIMIT %(n)s),
     l AS (SELECT c.id, {SCORE} AS s FROM lrc_chunks c WHERE {{where}} ORDER BY 2 DESC, 1 LIMIT %(n)s),
     cand AS (SELECT id FROM d UNION SELECT id FROM l)
SELECT c.id, {_DENSE_OF}, coalesce(l.s, {SCORE}) FROM lrc_chunks c JOIN cand USING (id) LEFT JOIN l USING (id)
ORDER BY c.id"""
_NO_TERMS = {"qt": [], "qi": [], "avgdl": 1.0}


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
        where, lex = self._lexical(query) if mode != Mode.DENSE else (_MATCHES, _NO_TERMS)
        if allowed is not None:
            return self._rank_within(np.unique(np.asarray(allowed, dtype=np.int64)), q, lex, k, mode)
        n = max(fusion.CANDIDATES, k) if mode == Mode.HYBRID else k
        if mode == Mode.LEXICAL:
            rows = self._query(_LEXICAL_TOP.format(where=where), {**lex, "n": k}) if lex["qt"] else []
            return [(int(i), float(s), {"lexical": float(s)}) for i, s in rows]
        params = {**lex, "q": q, "n": n, "m": 2 * n + 8}
        if mode == Mode.DENSE or not lex["qt"]:
            rows = self._query(_DENSE_TOP, params, dense=True)
            if mode == Mode.DENSE:
                return [(int(i), float(s), {"dense": float(s)}) for i, s in rows]
            rows = [(i, s, 0.0) for i, s in rows]  # hybrid with no known terms: the dense side alone
        else:
            rows = self._query(_HYBRID.format(where=where), params, dense=True)
        if not rows:
            return []
        return fusion.fused_top(*_scored(rows), k)

    def lexicon(self, text: str) -> Lexicon:
        """The document frequencies of ``text``'s terms and the library's totals (``lrc_terms``)."""
        return self.store.read(lambda c: Lexicon.read(c, text), "could not be searched")

    def _lexical(self, query: str) -> tuple[str, dict]:
        """(which passages the lexical side ranks, the ``SCORE`` parameters).

        Every passage holding one of the question's known terms, unless their document frequencies add up to
        more than ``LEXICAL_FULL`` in a library of more passages than that: then a bounded pre-filter, up to
        ``LEXICAL_BUDGET`` passages holding all the terms and up to ``LEXICAL_BUDGET`` holding its rare terms
        (held by at most ``COMMON`` of the passages; rarest first while their document frequencies add up to
        the budget; the rarest term when none is rare): what ranks high in BM25, where a common term weighs
        little. Every passage ranked gets its exact score. A small library is always ranked in full."""
        lex = self.lexicon(query)
        params = lex.params()
        known = sorted(lex.known(), key=lambda kd: (kd[1], kd[0]))
        if min(lex.passages, sum(d for _, d in known)) <= LEXICAL_FULL:
            return _MATCHES, params
        rare, total = [], 0
        for term, df in known:
            if rare and (total + df > LEXICAL_BUDGET or df > COMMON * lex.passages):
                break
            rare.append(term)
            total += df
        return _BOUNDED, {**params, "rare": rare, "b": LEXICAL_BUDGET}

    def _rank_within(self, allowed: np.ndarray, q, lex: dict, k: int, mode: Mode) -> list[tuple[int, float, dict]]:
        if len(allowed) == 0:
            return []
        dense = _DENSE_OF if mode != Mode.LEXICAL else "NULL"
        lexical = SCORE if mode != Mode.DENSE and lex["qt"] else "0"
        rows = self._query(f"SELECT c.id, {dense}, {lexical} FROM lrc_chunks c WHERE c.id = ANY(%(ids)s) ORDER BY c.id",
                           {**lex, "q": q, "ids": allowed.tolist()})
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
        """Terms of ``text`` (``rag.search.lexical.tokenize``'s) that no passage holds (``lrc_terms``)."""
        return self.lexicon(text).unknown()

    def close(self) -> None:
        self.store.close()
