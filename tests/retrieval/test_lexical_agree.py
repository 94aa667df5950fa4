"""Both backends read words alike (issue 25, item 7): the same real library in the embedded store (our BM25
in memory) and in a real PostgreSQL (BM25 in SQL over the passages' own terms and ``lrc_terms``) gives every
question the same lexical scores and ranks, the same ``unknown_terms`` and the same hybrid ranking; after a
file is removed or changed; within a scope; and after a library of the previous schema (the english
``tsv`` column) is migrated in place."""
from __future__ import annotations

import math
from pathlib import Path

import psycopg
import pytest

from rag.library import Library
from rag.search.lexical import tokenize
from .test_library import write_docs

CODE = """# Extending Python in C

Call `Py_BuildValue` to build a value from C data; `PyArg_ParseTuple` parses the arguments.
In the browser, `document.getElementById("colour")` finds the element, and an `HTTPServer` serves it.

## Optimization

Optimization of the query planner: the optimizer analyzes statistics. Organize your indexes and
normalize the colors; analyzing takes a while. The colour of the favourite theme is customizable.
"""

QUESTIONS = [
    "How do I descale the kettle with vinegar?",
    "optimisation of the analyser; organising and normalising colours",  # British spellings
    "Py_BuildValue build value",  # a code identifier and its parts
    "getElementById HTTPServer http server",
    "What is R?",  # stop words around one very common term
    "what is the",  # stop words only
    "zorblax quux frobnicate kettle",  # unknown words beside a known one
    "Who first wrote R at the University of Auckland?",
    "sunlight sunlight tomatoes tomatoes watering",  # repeated terms count once
    "aperture of a reflector telescope mirrors lenses",
]
TOL = 1e-5


def key(hit) -> tuple:
    return Path(hit.chunk.source).name, hit.chunk.page, hit.chunk.text


def lexical(lib: Library, q: str, scope=None) -> list[tuple[tuple, float]]:
    return [(key(h), h.score) for h in lib.search(q, k=1000, mode="lexical", rerank=False, scope=scope)]


def tie_groups(ranked: list[tuple[tuple, float]]) -> list[set]:
    """The ranking as consecutive groups of passages with equal scores (ties may come in any order)."""
    groups: list[tuple[float, set]] = []
    for k, s in ranked:
        if groups and math.isclose(s, groups[-1][0], rel_tol=TOL):
            groups[-1][1].add(k)
        else:
            groups.append((s, {k}))
    return [g for _, g in groups]


def assert_same_words(a: Library, b: Library, questions=QUESTIONS, scope_a=None, scope_b=None) -> int:
    """Equal lexical scores, ranks and unknown terms for every question; returns the passages compared."""
    compared = 0
    for q in questions:
        la, lb = lexical(a, q, scope_a), lexical(b, q, scope_b)
        da, db = dict(la), dict(lb)
        assert da.keys() == db.keys(), q
        for k in da:
            assert math.isclose(da[k], db[k], rel_tol=TOL), (q, k[:2], da[k], db[k])
        assert tie_groups(la) == tie_groups(lb), q
        assert a.unknown_terms(q) == b.unknown_terms(q), q
        compared += len(la)
    return compared


def assert_same_hybrid(a: Library, b: Library, questions=QUESTIONS) -> None:
    for q in questions:
        ha, hb = a.search(q, k=5, rerank=False), b.search(q, k=5, rerank=False)
        assert [key(h) for h in ha] == [key(h) for h in hb], q
        assert all(math.isclose(x.score, y.score, rel_tol=1e-4, abs_tol=1e-4) for x, y in zip(ha, hb)), q


@pytest.fixture
def twins(tmp_path, embedder, pg, small_pdf):
    """The same real files (three small documents, a code page, two pages of the R FAQ) in both backends."""
    docs = write_docs(tmp_path / "docs")
    (docs / "extending.md").write_text(CODE, encoding="utf-8")
    embedded, postgres = Library(tmp_path / "index"), Library(pg.database())
    for lib in (embedded, postgres):
        report = lib.ingest([docs, small_pdf])
        assert not report.failed and len(report.added) == 5
    yield embedded, postgres, docs
    postgres.backend.close()


def test_lexical_scores_ranks_and_unknown_terms_agree(twins):
    embedded, postgres, docs = twins
    assert assert_same_words(embedded, postgres) > 30
    assert lexical(postgres, "what is the") == [] and lexical(postgres, "zorblax quux") == []
    top = lexical(postgres, "optimisation colours")[0][0]
    assert top[0] == "extending.md"  # the British spelling finds the American one
    assert postgres.unknown_terms("Zorblax kettle descaling quux") == ["zorblax", "quux"]
    assert postgres.unknown_terms("getElementById") == embedded.unknown_terms("getElementById") == []
    missing = postgres.unknown_terms("getElementByName")
    assert missing == embedded.unknown_terms("getElementByName") and missing[0] == "getelementbyname"
    assert_same_hybrid(embedded, postgres)


def test_they_still_agree_after_a_file_changes_and_another_goes(twins):
    embedded, postgres, docs = twins
    (docs / "kettle.md").write_text("# Kettle manual\n\nDescale the kettle monthly with citric acid; a zorblax "
                                    "filter keeps the limescale out.\n", encoding="utf-8")
    for lib in (embedded, postgres):
        assert lib.ingest([docs]).updated and lib.remove(docs / "garden.txt") >= 1
    gone = tokenize("tomatoes")
    assert embedded.unknown_terms("zorblax tomatoes") == postgres.unknown_terms("zorblax tomatoes") == gone
    assert_same_words(embedded, postgres)
    assert_same_hybrid(embedded, postgres)
    uri = postgres.backend.store.uri
    with psycopg.connect(uri) as c:  # the kept frequencies are what the passages hold
        kept = dict(c.execute("SELECT term, df FROM lrc_terms").fetchall())
        counted = dict(c.execute("SELECT t, count(*) FROM lrc_chunks, unnest(terms) t GROUP BY t").fetchall())
        totals = c.execute("SELECT count(*), sum(dl) FROM lrc_chunks").fetchone()
    assert (kept.pop(" passages"), kept.pop(" tokens")) == totals
    assert kept == counted


def test_a_scope_scores_alike(twins):
    embedded, postgres, docs = twins
    scope = [str((docs / n).resolve()) for n in ("kettle.md", "extending.md")]
    assert assert_same_words(embedded, postgres, QUESTIONS[:4], scope, scope) > 0


def test_a_schema_2_library_is_migrated_in_place(twins):
    """A library made before schema 3 (its passages with the generated english tsvector, no terms): opening it
    computes every passage's terms and the frequencies from the stored texts, and it then ranks as embedded."""
    embedded, postgres, docs = twins
    uri = postgres.backend.store.uri
    postgres.backend.close()
    with psycopg.connect(uri, autocommit=True) as c:  # back to schema 2's layout, as an older app made it
        c.execute("DROP TABLE lrc_terms")
        c.execute("ALTER TABLE lrc_chunks DROP COLUMN terms, DROP COLUMN tfs, DROP COLUMN dl, ADD COLUMN tsv tsvector "
                  "GENERATED ALWAYS AS (to_tsvector('english', coalesce(context, '') || ' ' || text)) STORED")
        c.execute("CREATE INDEX lrc_chunks_tsv ON lrc_chunks USING gin (tsv)")
        c.execute("UPDATE lrc_meta SET value = '2' WHERE key = 'schema'")
    again = Library(uri)
    with psycopg.connect(uri) as c:
        assert c.execute("SELECT value FROM lrc_meta WHERE key = 'schema'").fetchone() == ("3",)
        assert c.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'lrc_chunks'::regclass AND "
                         "attname = 'tsv' AND NOT attisdropped").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM lrc_chunks WHERE dl = 0").fetchone() == (0,)
    assert assert_same_words(embedded, again) > 30
    assert_same_hybrid(embedded, again)
    again.backend.close()
