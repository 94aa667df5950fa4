"""The two library backends side by side, same run, same data: embedded (FAISS + SQLite + BM25) and
PostgreSQL (pgvector HNSW + full text search), on a private PostgreSQL 16 + pgvector (pgserver).

    python -m rag bench store                       # 10k and 100k passages, 200 questions
    python -m rag bench store -- --sizes 10000 --no-write

1. R FAQ through the real ingest path into each backend: ingest throughput (passages/s) and the
   gold_hit figures (../shared/tools/gold_hit.py, k=5, hybrid) of its questions.
2. At each size: REAL texts (all python-docs passages, ~14k, repeated under other file names) with
   vectors: the first ``--real`` python-docs passages embedded for real (cached in the temp folder:
   embedding 100k passages takes hours here), topped up by vectors drawn around them along their real
   neighbourhoods (``realistic``: no copies, nearest-neighbour similarity like the real vectors'). Bulk
   load time, query p50/p95 (hybrid and dense; the pyfaq questions), and HNSW recall@10 of the dense
   search against exact inner product (the pyfaq and R FAQ questions embedded for real), for several
   hnsw.ef_search values.
Targets: ingest >= 0.8 of embedded, p95 <= 100 ms at 100k for both, recall@10 >= 0.95, gold_hit within 0.02.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from benchlib import command_line, machine_note, python_docs_drafts, today, write_section  # noqa: E402
from rag.config import settings  # noqa: E402

DATA = settings().datasets_dir
GOLD_HIT = DATA.parent / "tools" / "gold_hit.py"
TITLE = "A team library on PostgreSQL (issue 16)"
ROUNDS = 3  # latency rounds per backend and mode (``--rounds``)


def gold_hit(location: str, log) -> dict:
    from rag.evaluation import retrieval_run

    rfaq = DATA / "rfaq"
    run, info = retrieval_run([str(rfaq / "R-FAQ.pdf")], rfaq / "queries.jsonl", k=5, mode="hybrid",
                              index_dir=location, log=log)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(run, f)
    out = subprocess.run([sys.executable, str(GOLD_HIT), f.name, str(rfaq), "--k", "5", "--quiet"],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    scores = json.loads(out.strip().splitlines()[-1])
    return {"chunks": info["chunks"], "ingest_s": info["ingest_s"],
            "ingest_per_s": round(info["chunks"] / info["ingest_s"], 1), **{k: scores[k] for k in
                                                                            ("hit@1", "hit@5", "MRR@5")}}


def corpus(n_real: int, log):
    """Every python-docs passage, and real embeddings of the first ``n_real`` (cached: a few minutes each)."""
    from rag.embedder import Embedder
    from rag.ingest.chunking import Chunker

    emb = Embedder.get(settings().embed_model)
    chunker = Chunker.for_model(emb.path, emb.window)
    drafts = python_docs_drafts(chunker, datasets=DATA)
    for d in drafts:
        d.views = []  # one vector per passage
    n_real = min(n_real, len(drafts))
    key = hashlib.sha1(emb.model_id.encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"lrc-bench-store-{key}-{len(drafts)}.npy"
    have = np.load(cache) if cache.exists() else np.zeros((0, emb.dim), dtype=np.float32)
    if len(have) < n_real:
        log(f"embedding python-docs passages {len(have)}..{n_real} (cached in {cache})")
        for i in range(len(have), n_real, 512):
            have = np.vstack([have, emb.encode([d.embed_text for d in drafts[i:min(n_real, i + 512)]])])
            np.save(cache, have)
    return drafts, have[:n_real], emb


def realistic(size: int, base: np.ndarray, rng, spread: float = 0.5, noise: float = 0.5, knn: int = 10):
    """``size`` vectors: the real ones, then vectors drawn around a random real one along its ``knn`` nearest
    real neighbours (Gaussian weights of ``spread`` on the differences, plus isotropic noise of norm about
    ``noise``), normalised: new passages between related real ones, none a copy (cosine to its seed about 0.65,
    nearest-neighbour similarity like the real vectors' own)."""
    real, dim = base.shape
    sims = base @ base.T
    np.fill_diagonal(sims, -2.0)
    near = np.argsort(-sims, axis=1)[:, :knn]
    seed = rng.integers(0, real, max(0, size - real))
    out = base[seed].copy()
    for j in range(knn):
        out += (rng.standard_normal((len(seed), 1)).astype(np.float32) * spread) * (base[near[seed, j]] - base[seed])
    out += rng.standard_normal(out.shape).astype(np.float32) * (noise / np.sqrt(dim))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return np.vstack([base, out])[:size].astype(np.float32)


def fill(size: int, drafts, base: np.ndarray, rng):
    """(FileCommits of ``size`` passages, their vectors): the real passages' texts repeated, ``realistic``
    vectors (the real ones first)."""
    from rag.store import FileCommit

    vecs = realistic(size, base, rng)
    commits, made, c = [], 0, 0
    while made < size:
        part = drafts[: size - made]
        for j in range(0, len(part), 2000):  # files of 2,000 passages
            commits.append(FileCommit(f"/bench/copy{c:03d}/python-docs-{j}.txt", f"copy{c}-{j}", f"h{c}-{j}", 0, 0,
                                      "text", 0, [], part[j:j + 2000], vecs[made + j:made + j + len(part[j:j + 2000])]))
        made += len(part)
        c += 1
    return commits, vecs


def latency(lib, questions, mode: str, k: int = 4) -> tuple[float, float]:
    from rag.evaluation import percentile

    lib.search("warm up", k=k, mode=mode)
    lat = []
    for q in questions:
        t = time.perf_counter()
        lib.search(q, k=k, mode=mode)
        lat.append(1000 * (time.perf_counter() - t))
    return round(statistics.median(lat), 1), round(percentile(lat, 0.95), 1)


def scale(size: int, pg, drafts, base, emb, questions, qvecs, efs, log) -> dict:
    """Load both backends with ``size`` passages; latency (``questions``) and recall@10 (``qvecs``)."""
    from rag.library import Library
    from rag.schema import Mode

    rng = np.random.default_rng(size)
    commits, vecs = fill(size, drafts, base, rng)
    res: dict = {"passages": size}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        t = time.perf_counter()
        emb_lib = Library(Path(tmp) / "index")
        emb_lib.load()
        emb_lib.store.commit(commits)
        emb_lib = Library(Path(tmp) / "index")
        emb_lib.load()
        res["embedded_load_s"] = round(time.perf_counter() - t, 1)
        uri = pg.database()
        t = time.perf_counter()
        pg_lib = Library(uri)
        pg_lib.load()
        for i in range(0, len(commits)):
            pg_lib.store.commit(commits[i:i + 1], pg_lib.store.model_id())
        pg_lib.store.read(lambda c: c.execute("ANALYZE lrc_chunks"))  # what autovacuum does after a bulk load
        res["postgres_load_s"] = round(time.perf_counter() - t, 1)
        log(f"{size}: loaded embedded {res['embedded_load_s']} s, postgres {res['postgres_load_s']} s")
        rounds: dict = {}
        for _ in range(ROUNDS):  # the sides alternate, so both meet the machine's other work alike
            for name, lib in (("embedded", emb_lib), ("postgres", pg_lib)):
                for mode in ("hybrid", "dense"):
                    rounds.setdefault(f"{name}_{mode}", []).append(latency(lib, questions, mode))
        for key, got in rounds.items():  # the median round's p50 and p95
            res[f"{key}_p50_ms"] = statistics.median(p50 for p50, _ in got)
            res[f"{key}_p95_ms"] = statistics.median(p95 for _, p95 in got)
            res[f"{key}_rounds"] = got
        for name in ("embedded", "postgres"):
            log(f"{size}: {name} hybrid p50/p95 {res[f'{name}_hybrid_p50_ms']}/{res[f'{name}_hybrid_p95_ms']} ms, "
                f"dense {res[f'{name}_dense_p50_ms']}/{res[f'{name}_dense_p95_ms']} ms")
        ids = np.asarray(pg_lib.store.chunk_ids([c.path for c in commits]), dtype=np.int64)  # in commit order
        exact = [set(ids[np.argsort(-(vecs @ q))[:10]].tolist()) for q in qvecs]
        for ef in efs:
            os.environ["LRC_STORE_EF_SEARCH"] = str(ef)
            got = [{i for i, _, _ in pg_lib.backend.rank(q, "", 10, Mode.DENSE)} for q in qvecs]
            res[f"recall@10_ef{ef}"] = round(float(np.mean([len(g & e) / 10 for g, e in zip(got, exact)])), 4)
            lat = []
            for q in qvecs[:100]:
                t = time.perf_counter()
                pg_lib.backend.rank(q, "", 10, Mode.DENSE)
                lat.append(1000 * (time.perf_counter() - t))
            res[f"dense_sql_p50_ms_ef{ef}"] = round(statistics.median(lat), 1)
            log(f"{size}: ef_search {ef}: recall@10 {res[f'recall@10_ef{ef}']}, SQL p50 {res[f'dense_sql_p50_ms_ef{ef}']} ms")
        os.environ.pop("LRC_STORE_EF_SEARCH", None)
        pg_lib.backend.close()
    return res


def main() -> int:
    global ROUNDS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", default="100,200,400")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="latency rounds, reported: the median round")
    ap.add_argument("--real", type=int, default=5120, help="python-docs passages embedded for real")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    ROUNDS = max(1, a.rounds)
    import pgserver

    sys.path.insert(0, str(REPO / "tests" / "retrieval"))
    from conftest import PgServer  # the tests' pgserver wrapper: fresh databases

    log = lambda s: print(s, flush=True)  # noqa: E731
    folder = Path(tempfile.mkdtemp(prefix="lrc-bench-pg-"))
    pg = PgServer(folder)
    t0 = time.perf_counter()
    try:
        gold = {}
        with tempfile.TemporaryDirectory(prefix="bench-store-rfaq-") as tmp:
            for name, loc in (("embedded", str(Path(tmp) / "index")), ("postgres", pg.database())):
                gold[name] = gold_hit(loc, log)
                log(f"R FAQ {name}: {gold[name]}")
        drafts, base, emb = corpus(a.real, log)
        questions = [json.loads(line)["text"] for line in open(DATA / "pyfaq" / "queries.jsonl")][: a.queries]
        asked = questions + [json.loads(line)["text"] for line in open(DATA / "rfaq" / "queries.jsonl")]
        qvecs = np.vstack([emb.encode_query(q) for q in asked])
        efs = [int(x) for x in a.ef.split(",")]
        scales = [scale(int(n), pg, drafts, base, emb, questions, qvecs, efs, log) for n in a.sizes.split(",")]
    finally:
        pg.close()
        shutil.rmtree(folder, ignore_errors=True)
    summary = {"gold_hit": gold, "scales": scales, "seconds": round(time.perf_counter() - t0), "real": len(base),
               "texts": len(drafts), "recall_queries": len(qvecs)}
    print(json.dumps(summary))
    if not a.no_write:
        write_section(TITLE, body(summary, sys.argv[1:]))
    return 0


def body(s: dict, argv: list[str]) -> str:
    g, sc = s["gold_hit"], s["scales"]
    e, p = g["embedded"], g["postgres"]
    from rag.backends.pg_store import HNSW_EF_CONSTRUCTION, HNSW_M
    from rag.backends.postgres import LEXICAL_BUDGET, LEXICAL_FULL

    lines = [f"`{command_line('store', argv)}`, {today()}; {machine_note()}. PostgreSQL 16.2 + pgvector 0.6.2 "
             f"(pgserver, unix socket, default server settings), HNSW m={HNSW_M}, ef_construction="
             f"{HNSW_EF_CONSTRUCTION}, ef_search {settings().store_ef_search} (LRC_STORE_EF_SEARCH), lexical "
             f"pre-filter budget {LEXICAL_BUDGET} per part (above {LEXICAL_FULL} matches); run took {s['seconds']} s.", "",
             "**R FAQ through the real ingest path** (R-FAQ.pdf, hybrid, k=5, gold_hit.py):", "",
             "| backend | passages | ingest s | passages/s | hit@1 | hit@5 | MRR@5 |", "|---|---|---|---|---|---|---|"]
    for name, r in (("embedded", e), ("PostgreSQL", p)):
        lines.append(f"| {name} | {r['chunks']} | {r['ingest_s']} | {r['ingest_per_s']} | {r['hit@1']} | "
                     f"{r['hit@5']} | {r['MRR@5']} |")
    lines += ["", f"Ingest throughput PostgreSQL / embedded: **{p['ingest_per_s'] / e['ingest_per_s']:.2f}** "
              "(target >= 0.8; the embedding model dominates both). gold_hit differences: hit@1 "
              f"{p['hit@1'] - e['hit@1']:+.3f}, hit@5 {p['hit@5'] - e['hit@5']:+.3f}, MRR@5 {p['MRR@5'] - e['MRR@5']:+.3f} "
              "(target: equal; both score words with the same BM25: rag.backends.pg_lexicon).", "",
              f"**Scale** (the {s['texts']:,} python-docs passages' texts repeated; vectors: {s['real']:,} of them "
              "embedded for real, topped up by `realistic` vectors drawn along their real neighbourhoods; the "
              "pyfaq questions; whole `Library.search` incl. query embedding and passage fetch, k=4; p50 / p95 of the "
              f"median of {ROUNDS} rounds, the backends alternating):", "",
              "| passages | backend | bulk load s | hybrid p50 / p95 ms | dense p50 / p95 ms |", "|---|---|---|---|---|"]
    for r in sc:
        for name, key in (("embedded", "embedded"), ("PostgreSQL", "postgres")):
            lines.append(f"| {r['passages']:,} | {name} | {r[f'{key}_load_s']} | {r[f'{key}_hybrid_p50_ms']} / "
                         f"{r[f'{key}_hybrid_p95_ms']} | {r[f'{key}_dense_p50_ms']} / {r[f'{key}_dense_p95_ms']} |")
    efs = sorted({int(k.split("ef")[-1]) for r in sc for k in r if k.startswith("recall@10_ef")})
    lines += ["", f"**HNSW recall@10 against exact inner product** ({s['recall_queries']} pyfaq and R FAQ "
              "questions embedded for real, same vectors; p50 of the dense search alone):", "", "| passages | " + " | ".join(f"ef_search {ef}" for ef in efs) + " |",
              "|---|" + "---|" * len(efs)]
    for r in sc:
        lines.append(f"| {r['passages']:,} | " + " | ".join(
            f"{r[f'recall@10_ef{ef}']} ({r[f'dense_sql_p50_ms_ef{ef}']} ms)" for ef in efs) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
