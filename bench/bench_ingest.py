"""Ingest throughput: the whole ingest path (load, chunk, embed, store) versus a bare
``SentenceTransformer.encode`` over exactly the texts that ingest embedded, in one run.

    python -m rag bench ingest                 # R-data.pdf + 15 python-docs files (a few minutes)
    python -m rag bench ingest -- --all        # all 8 PDFs of ../shared/datasets/pdfs (much longer)
    python bench/bench_ingest.py PATH...       # any files/folders

Prints chunks, embedded texts ("views"), seconds and texts/s for both, and the ratio
(ingest / bare; target >= 0.9). JSON summary last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets"


def default_corpus(all_pdfs: bool) -> list[Path]:
    if all_pdfs:
        return sorted((DATA / "pdfs").glob("*.pdf"))
    docs = sorted((DATA / "python-docs" / "library").glob("*.rst.txt"))[:15]
    return [DATA / "pdfs" / "R-data.pdf", *docs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--all", action="store_true", help="all 8 shared PDFs")
    a = ap.parse_args()
    paths = [Path(p) for p in a.paths] or default_corpus(a.all)
    for p in paths:
        if not p.exists():
            print(f"missing: {p}", file=sys.stderr)
            return 2
    from rag import loaders
    from rag.embedder import Embedder
    from rag.library import Library

    emb = Embedder.get()
    emb.encode(["warm up the model"] * 32)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        lib = Library(Path(tmp) / "index")
        lib._ready()  # model loaded and store opened before the clock starts (both sides)
        t0 = time.perf_counter()
        report = lib.ingest(paths)
        t_ingest = time.perf_counter() - t0
        print(f"ingest: {report.summary()}")
        # the exact texts ingest embedded (same loaders and chunker; not timed)
        texts: list[str] = []
        files = lib.files()
        for e in files:
            doc = loaders.load(e.path)
            texts.extend(v for d in lib.chunker.chunk(doc) for v in (d.views or [d.embed_text]))
        t0 = time.perf_counter()
        emb.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
        t_bare = time.perf_counter() - t0
    chunks = report.chunks_added
    res = {"files": len(report.added), "failed": len(report.failed), "chunks": chunks, "embedded_texts": len(texts),
           "ingest_s": round(t_ingest, 2), "bare_encode_s": round(t_bare, 2),
           "ingest_texts_per_s": round(len(texts) / t_ingest, 2), "bare_texts_per_s": round(len(texts) / t_bare, 2),
           "ratio": round(t_bare / t_ingest, 3)}
    print(f"{len(texts)} texts ({chunks} chunks): ingest {t_ingest:.1f} s = {res['ingest_texts_per_s']}/s; "
          f"bare encode {t_bare:.1f} s = {res['bare_texts_per_s']}/s; ratio {res['ratio']} (target >= 0.9)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
