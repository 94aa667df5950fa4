"""The lexical side of the PostgreSQL library, read exactly as ``rag.search.lexical`` reads it.

Each passage row keeps its own BM25 terms (``terms``: the stemmed terms of ``term_counts``, ``tfs``: how
often each occurs, ``dl``: its length in terms), computed in Python from the same text the embedded
index tokenises; ``lrc_terms`` keeps each term's document frequency and, under two keys no term can
have, the passage count and the total length. They change in the same transaction as the passages
(``Delta``), so a question is scored with the same idf, avgdl, k1 and b on both backends.

``lrc_terms`` rows are hot (every commit touching "python" updates its row): a transaction adds its
deltas once, at its end, in key order, so two writers never wait on each other in a cycle.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from rag.schema import with_context
from rag.search.lexical import B, K1, avgdl, idf, term_counts, tokenize

PASSAGES, TOKENS = " passages", " tokens"  # lrc_terms keys of the totals (a term never has a space)
MAX_TERM = 200  # bytes; a longer term is kept as its digest (GIN and B-tree entries have a size limit)
BACKFILL_BATCH = 2000

COLUMNS = "terms text[] NOT NULL DEFAULT '{}', tfs integer[] NOT NULL DEFAULT '{}', dl integer NOT NULL DEFAULT 0"
TABLE = "CREATE TABLE IF NOT EXISTS lrc_terms (term text PRIMARY KEY, df bigint NOT NULL)"
INDEX = "CREATE INDEX IF NOT EXISTS lrc_chunks_terms ON lrc_chunks USING gin (terms)"

# the BM25 score of passage c for the question's terms %(qt)s with their idf %(qi)s (rag.search.lexical's
# formula; %(avgdl)s: the library's mean passage length); 0 when c holds none of them. Each question term is
# looked up in c's terms (array_position: measured a quarter faster than joining the two arrays)
_F = "::float8"
SCORE = (f"(SELECT coalesce(sum(q.idf * x.f * {K1 + 1!r}{_F} / (x.f + {K1!r}{_F} * ({1 - B!r}{_F} + {B!r}{_F} * "
         "c.dl / %(avgdl)s))), 0) FROM unnest(%(qt)s::text[], %(qi)s::float8[]) q(term, idf) CROSS JOIN LATERAL "
         "(SELECT c.tfs[array_position(c.terms, q.term)] AS f) x WHERE x.f IS NOT NULL)")


def key(term: str) -> str:
    """How a term is stored: itself, or ``~`` and its digest when longer than ``MAX_TERM`` bytes."""
    raw = term.encode()
    return term if len(raw) <= MAX_TERM else "~" + hashlib.blake2b(raw, digest_size=16).hexdigest()


def passage_row(text: str) -> tuple[str, str, int]:
    """(terms, their frequencies, length) of a passage, as space-separated text (``string_to_array`` makes
    the arrays in SQL: one row's arrays may differ in length from the next's)."""
    counts = term_counts(text)
    return " ".join(key(t) for t in counts), " ".join(map(str, counts.values())), sum(counts.values())


def insert_columns(texts: list[str]) -> tuple[list[str], list[str], list[int]]:
    rows = [passage_row(t) for t in texts]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


class Delta:
    """Document-frequency changes of one transaction: passages removed and added."""

    def __init__(self):
        self.df: Counter = Counter()

    def add(self, terms: list[str] | str, dl: int, sign: int = 1) -> None:
        for t in (terms.split() if isinstance(terms, str) else terms):
            self.df[t] += sign
        self.df[PASSAGES] += sign
        self.df[TOKENS] += sign * int(dl)

    def removed(self, rows) -> None:
        """Rows (terms, dl) as ``DELETE ... RETURNING terms, dl`` gives them."""
        for terms, dl in rows:
            self.add(terms or [], dl or 0, -1)

    def apply(self, cur) -> None:
        """Write the changes (in key order; terms no passage holds any more are dropped)."""
        items = sorted((k, v) for k, v in self.df.items() if v)
        if not items:
            return
        cur.execute("INSERT INTO lrc_terms (term, df) SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1 "
                    "ON CONFLICT (term) DO UPDATE SET df = lrc_terms.df + EXCLUDED.df",
                    ([k for k, _ in items], [v for _, v in items]))
        gone = [k for k, v in items if v < 0 and k not in (PASSAGES, TOKENS)]
        if gone:
            cur.execute("DELETE FROM lrc_terms WHERE term = ANY(%s) AND df <= 0", (gone,))
        self.df.clear()


class Lexicon:
    """What one question needs from ``lrc_terms``: its terms' document frequencies and the totals."""

    def __init__(self, terms: list[str], df: dict[str, int], passages: int, tokens: int):
        self.terms, self.df, self.passages = terms, df, passages
        self.avgdl = avgdl(tokens / passages) if passages else 1.0

    @classmethod
    def read(cls, conn, text: str) -> "Lexicon":
        terms = list(dict.fromkeys(tokenize(text or "")))
        keys = list(dict.fromkeys(key(t) for t in terms)) + [PASSAGES, TOKENS]
        df = dict(conn.execute("SELECT term, df FROM lrc_terms WHERE term = ANY(%s)", (keys,)).fetchall())
        return cls(terms, df, int(df.pop(PASSAGES, 0)), int(df.pop(TOKENS, 0)))

    def unknown(self) -> list[str]:
        """The question's terms no passage holds (``LexicalIndex.unknown_terms``'s rule)."""
        return [t for t in self.terms if self.df.get(key(t), 0) <= 0]

    def known(self) -> list[tuple[str, int]]:
        """(stored key, df) of the question's terms some passage holds, each once."""
        return list({key(t): self.df[key(t)] for t in self.terms if self.df.get(key(t), 0) > 0}.items())

    def params(self) -> dict:
        """The ``SCORE`` parameters: the known terms with their idf (float32, as the embedded index has it)."""
        known = self.known()
        dfs = np.asarray([d for _, d in known], dtype=np.float32)
        return {"qt": [k for k, _ in known], "qi": [float(x) for x in idf(self.passages, dfs).astype(np.float32)],
                "avgdl": self.avgdl}


def migrate(conn) -> int:
    """Schema 2 -> 3 (in ``PgStore``'s schema transaction; no statement timeout: a large library takes a
    while): the english tsvector goes; every stored passage's terms are computed from its text (the text
    the embedded index reads: context + text), in batches, and ``lrc_terms`` counted from them. Returns
    the passages done."""
    conn.execute("SET LOCAL statement_timeout = 0")
    conn.execute("DROP INDEX IF EXISTS lrc_chunks_tsv")
    conn.execute("ALTER TABLE lrc_chunks DROP COLUMN IF EXISTS tsv, " +
                 ", ".join("ADD COLUMN IF NOT EXISTS " + c for c in COLUMNS.split(", ")))
    conn.execute(TABLE)
    delta, last, done = Delta(), 0, 0
    while True:
        rows = conn.execute("SELECT id, context, text FROM lrc_chunks WHERE id > %s ORDER BY id LIMIT %s",
                            (last, BACKFILL_BATCH)).fetchall()
        if not rows:
            break
        terms, tfs, dls = insert_columns([with_context(r[1], r[2]) for r in rows])
        conn.execute("UPDATE lrc_chunks c SET terms = string_to_array(u.t, ' '), tfs = string_to_array(u.f, ' ')"
                     "::int[], dl = u.dl FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[]) u(id, t, f, dl) "
                     "WHERE c.id = u.id", ([r[0] for r in rows], terms, tfs, dls))
        for t, dl in zip(terms, dls):
            delta.add(t, dl)
        last, done = rows[-1][0], done + len(rows)
    conn.execute("DELETE FROM lrc_terms")
    with conn.cursor() as cur:
        delta.apply(cur)
    return done
