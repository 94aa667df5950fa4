"""Re-index of an unchanged folder (default: ../shared/datasets/python-docs, 466 files).

    python -m rag bench reindex -- --index-dir DIR [FOLDER]

DIR must already hold the folder's index (e.g. the one `python -m rag eval --dataset
../shared/datasets/pyfaq --extra-docs ../shared/datasets/python-docs --index-dir DIR` leaves in
DIR/index; both layouts are accepted). Measures (1) the normal re-run (size+mtime fast path) and
(2) the same with every stored mtime cleared, so each file is read and hashed (what a copy/touch
of the folder costs). Target: (1) under 5 s. Nothing may be embedded in either.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DATA / "python-docs"))
    ap.add_argument("--index-dir", required=True)
    a = ap.parse_args()
    from rag.library import Library

    idx = Path(a.index_dir)
    if (idx / "index" / "library.sqlite3").exists():
        idx = idx / "index"
    if not (idx / "library.sqlite3").exists():
        print(f"no index in {a.index_dir}: build it first (see --help)", file=sys.stderr)
        return 2
    lib = Library(idx)
    lib._ready()  # model + index loaded (the chat has them loaded already)
    t0 = time.perf_counter()
    fast = lib.ingest([a.folder])
    t_fast = time.perf_counter() - t0
    print(f"re-index (size+mtime): {fast.summary()}  [{t_fast:.2f} s]")
    with lib.store._tx() as c:
        c.execute("UPDATE files SET mtime_ns = 0")
    t0 = time.perf_counter()
    hashed = lib.ingest([a.folder])
    t_hash = time.perf_counter() - t0
    print(f"re-index (read + hash every file): {hashed.summary()}  [{t_hash:.2f} s]")
    res = {"files": len(fast.unchanged) + len(fast.added) + len(fast.updated), "unchanged": len(fast.unchanged),
           "chunks_embedded": fast.chunks_added + hashed.chunks_added, "fast_path_s": round(t_fast, 3),
           "hash_path_s": round(t_hash, 3), "target_s": 5.0}
    print(json.dumps(res))
    return 0 if res["chunks_embedded"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
