"""Ingest throughput: the whole ingest path (load, chunk, embed, store) versus a bare
``SentenceTransformer.encode`` over exactly the texts that ingest embedded, in one run.

    python -m rag bench ingest                 # R-data.pdf + 15 python-docs files (a few minutes)
    python -m rag bench ingest -- --all        # all 8 PDFs of ../shared/datasets/pdfs (much longer)
    python bench/bench_ingest.py PATH...       # any files/folders

Order: the texts ingest will embed are computed first (untimed), then bare encode, ingest, bare
encode again; the ratio is against the mean of the two bare runs, so a change of machine load
during the run (2 shared cores) does not favour either side. Prints chunks, embedded texts
("views"), seconds and texts/s for both, where ingest's time went (waiting for loaders,
embedding, saving), the load average, and the ratio (target >= 0.9). JSON summary last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets"


def default_corpus(all_pdfs: bool) -> list[Path]:
    if all_pdfs:
        return sorted((DATA / "pdfs").glob("*.pdf"))
    docs = sorted((DATA / "python-docs" / "library").glob("*.rst.txt"))[:15]
    return [DATA / "pdfs" / "R-data.pdf", *docs]


def expand(paths: list[Path]) -> list[Path]:
    """Files as ``Library.ingest`` expands them (folders recursively, supported types, no hidden)."""
    from rag.ingest import expand as expand_paths

    return expand_paths(paths)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--all", action="store_true", help="all 8 shared PDFs")
    ap.add_argument("--no-before", action="store_true",
                    help="only time the bare encode after ingest (default: before and after, mean)")
    a = ap.parse_args()
    paths = [Path(p) for p in a.paths] or default_corpus(a.all)
    for p in paths:
        if not p.exists():
            print(f"missing: {p}", file=sys.stderr)
            return 2
    from rag.ingest import loaders
    from rag.ingest.chunking import Chunker
    from rag.embedder import Embedder
    from rag.library import Library

    emb = Embedder.get()
    emb.encode(["warm up the model"] * 32)
    # the exact texts ingest will embed (same loaders and chunker; not timed; checked against the
    # number of vectors ingest stored below)
    texts: list[str] = []
    chunker = Chunker.for_model(emb.path, emb.window)  # as ingest builds it
    for p in expand(paths):
        try:
            doc = loaders.load(p)
        except loaders.LoaderError:
            continue
        texts.extend(v for d in chunker.chunk(doc) for v in (d.views or [d.embed_text]))

    def bare() -> float:
        t0 = time.perf_counter()
        emb.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
        return time.perf_counter() - t0

    load0 = os.getloadavg()[0]
    t_bare1 = bare() if not a.no_before else None  # bare, ingest, bare: drift on a shared machine cancels out
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        lib = Library(Path(tmp) / "index")
        lib.load()  # model loaded and store opened before the clock starts (both sides)
        t0 = time.perf_counter()
        report = lib.ingest(paths)
        t_ingest = time.perf_counter() - t0
        stored = lib.store.load_all(emb.dim)[2].shape[0]
    t_bare2 = bare()
    load1 = os.getloadavg()[0]
    print(f"ingest: {report.summary()}; waiting for loaders {report.wait_s:.1f} s, embedding "
          f"{report.embed_s:.1f} s, saving {report.save_s:.1f} s")
    if stored != len(texts):
        print(f"WARNING: ingest stored {stored} vectors, the bare side encoded {len(texts)} texts", file=sys.stderr)
    bares = [t for t in (t_bare1, t_bare2) if t is not None]
    t_bare = sum(bares) / len(bares)
    chunks = report.chunks_added
    res = {"files": len(report.added), "failed": len(report.failed), "chunks": chunks, "embedded_texts": len(texts),
           "stored_vectors": int(stored), "ingest_s": round(t_ingest, 2),
           "bare_encode_s": round(t_bare, 2), "bare_before_s": round(t_bare1, 2) if t_bare1 else None,
           "bare_after_s": round(t_bare2, 2),
           "ingest_texts_per_s": round(len(texts) / t_ingest, 2), "bare_texts_per_s": round(len(texts) / t_bare, 2),
           "ratio": round(t_bare / t_ingest, 3), "wait_s": round(report.wait_s, 2),
           "embed_s": round(report.embed_s, 2), "save_s": round(report.save_s, 2),
           "loadavg_start": round(load0, 2), "loadavg_end": round(load1, 2)}
    print(f"{len(texts)} texts ({chunks} chunks): ingest {t_ingest:.1f} s = {res['ingest_texts_per_s']}/s; "
          f"bare encode {t_bare:.1f} s (before {res['bare_before_s']}, after {res['bare_after_s']}) = "
          f"{res['bare_texts_per_s']}/s; ratio {res['ratio']} (target >= 0.9); load {load0:.1f} -> {load1:.1f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
