"""What the optional cross-encoder stage (LRC_RERANKER) costs per question, side by side with none.

    python -m rag bench rerank [-- --depths 10,20,40] [--pdf FILE.pdf] [--queries FILE.jsonl]

The cross-encoder has the shape of cross-encoder/ms-marco-MiniLM-L-6-v2 (BERT, 6 layers, 384 wide:
the usual small re-ranker), built from all-MiniLM-L6-v2's encoder weights plus an UNTRAINED scoring
head — no trained re-ranker is installable offline here, so this measures time, not quality (time
depends on the shape, not on the weights). Corpus: the R FAQ PDF; questions: its 71 queries, each
asked once per configuration, configurations interleaved question by question (machine noise hits
all alike). Reported: whole `Library.search` time (query embedding, fusion, re-ranking), p50 / p95.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from rag.config import settings  # noqa: E402

DATA = settings().datasets_dir


def build_cross_encoder(dest: Path) -> Path:
    from transformers import AutoTokenizer, BertForSequenceClassification

    from rag.embedder import DEFAULT_MODEL, resolve_model_path

    src = resolve_model_path(DEFAULT_MODEL)
    BertForSequenceClassification.from_pretrained(src, num_labels=1).save_pretrained(dest)
    AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="10,20,40")
    ap.add_argument("--pdf", default=str(DATA / "rfaq" / "R-FAQ.pdf"))
    ap.add_argument("--queries", default=str(DATA / "rfaq" / "queries.jsonl"))
    ap.add_argument("-k", type=int, default=4)
    a = ap.parse_args()
    from rag.evaluation import percentile
    from rag.library import Library

    questions = [json.loads(line)["text"] for line in open(a.queries, encoding="utf-8") if line.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as tmp:
        ce = build_cross_encoder(Path(tmp) / "cross-encoder")
        base = Library(Path(tmp) / "index", reranker="")
        base.ingest([a.pdf])
        configs = {"none": base}
        for d in (int(x) for x in a.depths.split(",")):
            configs[f"depth {d}"] = Library(Path(tmp) / "index", reranker=str(ce), rerank_depth=d)
        for lib in configs.values():  # load everything before the clocks run
            lib.search("warm up", a.k)
        times: dict[str, list[float]] = {name: [] for name in configs}
        for q in questions:
            for name, lib in configs.items():
                t = time.perf_counter()
                lib.search(q, a.k)
                times[name].append(time.perf_counter() - t)
        print(f"{base.stats().chunks} passages, {len(questions)} questions, k={a.k}, "
              f"torch threads {__import__('torch').get_num_threads()}")
        print(f"{'re-ranker':<10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
        out = {}
        for name, ts in times.items():
            ms = [1000 * t for t in ts]
            out[name] = {"p50_ms": round(percentile(ms, .5), 1), "p95_ms": round(percentile(ms, .95), 1),
                         "mean_ms": round(statistics.mean(ms), 1)}
            print(f"{name:<10} {out[name]['p50_ms']:>8} {out[name]['p95_ms']:>8} {out[name]['mean_ms']:>8}")
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
