"""Query latency at 100k chunks: question in, ranked chunks out (query embedding, FAISS, BM25,
fusion, chunk fetch), p50/p95 per mode.

    python -m rag bench query                  # 100k chunks, 200 questions
    python -m rag bench query -- --chunks 20000

The store is filled with REAL text chunks (python-docs chunked by the real chunker, repeated
under different file names up to the count) and SYNTHETIC vectors (random unit vectors: embedding
100k chunks takes hours here), one per chunk. The questions are the pyfaq questions, embedded
for real at query time. Target: hybrid p95 <= 100 ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from benchlib import python_docs_drafts  # noqa: E402
from rag.config import settings  # noqa: E402

DATA = settings().datasets_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=4)
    a = ap.parse_args()
    from rag.evaluation import percentile
    from rag.library import Library
    from rag.store import FileCommit

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        lib = Library(Path(tmp) / "index")
        lib.load()
        chunker = lib.chunker
        drafts = python_docs_drafts(chunker, limit=a.chunks, datasets=DATA)
        print(f"{len(drafts)} real chunks from python-docs ({time.perf_counter() - t0:.0f} s)", flush=True)
        rng = np.random.default_rng(0)
        dim = lib.embedder.dim
        copies = -(-a.chunks // len(drafts))
        made = 0
        for c in range(copies):
            part = drafts[: a.chunks - made]
            for d in part:
                d.views = [d.embed_text]
            vecs = rng.standard_normal((len(part), dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            lib.store.commit([FileCommit(f"/bench/copy{c}/python-docs.txt", f"copy{c}", "x", 0, 0, "text", 0, [],
                                         part, vecs)])
            made += len(part)
        print(f"store filled: {made} chunks ({time.perf_counter() - t0:.0f} s)", flush=True)
        t1 = time.perf_counter()
        lib2 = Library(Path(tmp) / "index")
        lib2.load()
        load_s = time.perf_counter() - t1
        print(f"library loaded (vectors -> FAISS, texts -> BM25): {load_s:.1f} s", flush=True)
        questions = [json.loads(line)["text"] for line in open(DATA / "pyfaq" / "queries.jsonl")][: a.queries]
        res = {"chunks": made, "vectors": "synthetic", "load_s": round(load_s, 1)}
        for mode in ("hybrid", "dense", "lexical"):
            lib2.search("warm up " + mode, k=a.k, mode=mode)
            lat = []
            for q in questions:
                t = time.perf_counter()
                hits = lib2.search(q, k=a.k, mode=mode)
                lat.append(1000 * (time.perf_counter() - t))
                assert hits or mode == "lexical"
            p50, p95 = statistics.median(lat), percentile(lat, 0.95)
            res[f"{mode}_p50_ms"], res[f"{mode}_p95_ms"] = round(p50, 1), round(p95, 1)
            print(f"{mode:8s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(lat)} queries, k={a.k})", flush=True)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
