"""Retrieval evaluation through the real ingest path.

``evaluate``: a BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv). Each corpus entry is written
as a document file (Markdown: its title as a heading, then its text) and indexed by the same
``Library.ingest`` as a user's files, optionally with a folder of real files as unjudged
distractors; chunk hits are mapped back to document ids (first chunk of a document counts) and
recall@1/5/10, MRR@10 and nDCG@10 are computed.

``retrieval_run``: real files in, ``{query id: [chunk text, ...]}`` out (scored by
``../shared/tools/gold_hit.py``), with the chat's default settings.
"""
from __future__ import annotations

import json
import math
import re
import statistics
import tempfile
import time
from pathlib import Path

from rag.library import Library


def read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def load_beir(folder: str | Path) -> tuple[dict[str, dict], dict[str, str], dict[str, dict[str, float]]]:
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder} is not a BEIR folder: {name} is missing")
    corpus = {str(o["_id"]): o for o in read_jsonl(folder / "corpus.jsonl")}
    queries = {str(o["_id"]): o.get("text", "") for o in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, float]] = {}
    with open(folder / "qrels.tsv", encoding="utf-8") as f:
        next(f, None)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and float(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return corpus, queries, qrels


def metrics(ranked: dict[str, list[str]], qrels: dict[str, dict[str, float]]) -> dict[str, float]:
    """recall@1/5/10, MRR@10, nDCG@10 over the judged queries."""
    r1 = r5 = r10 = mrr = ndcg = 0.0
    n = 0
    for qid, rel in qrels.items():
        n += 1
        docs = ranked.get(qid, [])[:10]
        rel_set = set(rel)
        hits = [d in rel_set for d in docs]
        r1 += sum(hits[:1]) / len(rel_set)
        r5 += sum(hits[:5]) / len(rel_set)
        r10 += sum(hits[:10]) / len(rel_set)
        for i, h in enumerate(hits):
            if h:
                mrr += 1.0 / (i + 1)
                break
        dcg = sum(rel.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(docs))
        ideal = sorted(rel.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg += dcg / idcg if idcg else 0.0
    n = n or 1
    return {"recall@1": round(r1 / n, 4), "recall@5": round(r5 / n, 4), "recall@10": round(r10 / n, 4),
            "mrr@10": round(mrr / n, 4), "ndcg@10": round(ndcg / n, 4), "queries": n}


def percentile(xs: list[float], p: float) -> float:
    """The p-quantile by rank (no interpolation), as all latency figures here report it."""
    xs = sorted(xs)
    return xs[int(p * (len(xs) - 1))] if xs else 0.0


def first_docs(doc_ids, k: int) -> list[str]:
    """The first k distinct documents of a ranked list of document ids (one per chunk hit)."""
    docs: list[str] = []
    for d in doc_ids:
        if d not in docs:
            docs.append(d)
            if len(docs) >= k:
                break
    return docs


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "doc"


def write_corpus(corpus: dict[str, dict], folder: Path) -> dict[str, str]:
    """One Markdown file per corpus entry (unchanged files are left alone). Returns path -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for cid, o in corpus.items():
        title = str(o.get("title") or "").strip()
        text = str(o.get("text") or "")
        body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
        path = folder / f"{_safe(cid)}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
        mapping[str(path.resolve())] = cid
    return mapping


def evaluate(dataset: str | Path, mode: str = "hybrid", k: int = 10, extra_docs: list[str] | None = None,
             index_dir: str | Path | None = None, progress=None, log=print) -> dict:
    corpus, queries, qrels = load_beir(dataset)
    tmp = None
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-eval-")
        index_dir = tmp.name
    try:
        work = Path(index_dir)
        mapping = write_corpus(corpus, work / "corpus")
        lib = Library(work / "index")
        lib.load()  # model loaded before the clocks start
        t0 = time.perf_counter()
        report = lib.ingest([work / "corpus", *(extra_docs or [])], progress=progress)
        log(f"ingest: {report.summary()}")
        for f, reason in report.failed[:10]:
            log(f"  failed: {reason}")
        ingest_s = time.perf_counter() - t0
        ranked: dict[str, list[str]] = {}
        lat = []
        depth = max(k * 5, 50)
        for qid in qrels:
            t = time.perf_counter()
            hits = lib.search(queries.get(qid, ""), k=depth, mode=mode)
            lat.append(time.perf_counter() - t)
            ranked[qid] = first_docs((mapping.get(h.chunk.source, "extra:" + h.chunk.source) for h in hits), k)
        m = metrics(ranked, qrels)
        m.update({"mode": mode, "chunks": lib.stats().chunks, "ingest_s": round(ingest_s, 1),
                  "query_ms_p50": round(1000 * statistics.median(lat), 1) if lat else 0.0})
        return m
    finally:
        if tmp is not None:
            tmp.cleanup()


def retrieval_run(docs: list[str], queries_file: str | Path, k: int = 5, mode: str | None = None,
                  index_dir: str | Path | None = None, log=print) -> tuple[dict[str, list[str]], dict]:
    """Index ``docs`` into a fresh store (or ``index_dir``) and answer each query with k chunk texts."""
    from rag.config import settings

    s = settings()
    mode = mode or s.retrieval_mode
    queries = read_jsonl(Path(queries_file))
    tmp = None
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-run-")
        index_dir = tmp.name
    try:
        lib = Library(index_dir, s.embed_model, s.max_file_mb)  # a folder or a PostgreSQL URI
        t_model = time.perf_counter()
        lib.load()  # model loaded before the clocks start (reported separately)
        model_s = time.perf_counter() - t_model
        t0 = time.perf_counter()
        report = lib.ingest(docs)
        ingest_s = time.perf_counter() - t0
        log(f"ingest: {report.summary()}")
        for f, reason in report.failed:
            log(f"  failed: {reason}")
        tokens = lib.chunk_tokens()
        run: dict[str, list[str]] = {}
        lat = []
        for q in queries:
            t = time.perf_counter()
            hits = lib.search(q["text"], k=k, mode=mode)
            lat.append(time.perf_counter() - t)
            run[str(q["_id"])] = [h.chunk.text for h in hits]
        info = {"mode": mode, "k": k, "chunks": len(tokens),
                "avg_chunk_tokens": round(statistics.mean(tokens), 1) if tokens else 0.0,
                "max_chunk_tokens": max(tokens) if tokens else 0,
                "model_load_s": round(model_s, 2), "ingest_s": round(ingest_s, 2),
                "query_ms_mean": round(1000 * statistics.mean(lat), 1) if lat else 0.0,
                "query_ms_p95": round(1000 * percentile(lat, 0.95), 1)}
        return run, info
    finally:
        if tmp is not None:
            tmp.cleanup()
