"""Re-index of an unchanged folder (default: ../shared/datasets/python-docs, 466 files).

    python -m rag bench reindex [-- --index-dir DIR] [FOLDER]

With --index-dir, DIR must already hold the folder's index (e.g. the one `python -m rag index
FOLDER` or `python -m rag eval ... --extra-docs FOLDER --index-dir DIR` leaves; both layouts are
accepted). Without it, a temporary index of the folder is built first with the real loaders,
chunker, hashes and manifest but SYNTHETIC vectors (embedding python-docs takes ~30 min here;
the re-index path never looks at vectors). Measures (1) the normal re-run (size+mtime fast path) and
(2) the same with every stored mtime cleared, so each file is read and hashed (what a copy/touch
of the folder costs). Target: (1) under 5 s. Nothing may be embedded in either.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from rag.config import settings  # noqa: E402

DATA = settings().datasets_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DATA / "python-docs"))
    ap.add_argument("--index-dir")
    a = ap.parse_args()
    from rag.library import Library

    tmp = None
    if a.index_dir:
        idx = Path(a.index_dir)
        if (idx / "index" / "library.sqlite3").exists():
            idx = idx / "index"
        if not (idx / "library.sqlite3").exists():
            print(f"no index in {a.index_dir}: build it first (see --help)", file=sys.stderr)
            return 2
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-reindex-")
        idx = Path(tmp.name)
        build_synthetic(idx, Path(a.folder))
    lib = Library(idx)
    lib.load()  # model + index loaded (the chat has them loaded already)
    t0 = time.perf_counter()
    fast = lib.ingest([a.folder])
    t_fast = time.perf_counter() - t0
    print(f"re-index (size+mtime): {fast.summary()}  [{t_fast:.2f} s]")
    db = sqlite3.connect(lib.store.path)  # the manifest's mtimes forgotten, as after a copy of the folder
    with db:
        db.execute("UPDATE files SET mtime_ns = 0")
    db.close()
    t0 = time.perf_counter()
    hashed = lib.ingest([a.folder])
    t_hash = time.perf_counter() - t0
    print(f"re-index (read + hash every file): {hashed.summary()}  [{t_hash:.2f} s]")
    res = {"files": len(fast.unchanged) + len(fast.added) + len(fast.updated), "unchanged": len(fast.unchanged),
           "chunks_embedded": fast.chunks_added + hashed.chunks_added, "fast_path_s": round(t_fast, 3),
           "hash_path_s": round(t_hash, 3), "target_s": 5.0}
    # the same from the command line, cold (a new process: imports, manifest; the model is not
    # loaded when nothing needs embedding)
    import subprocess

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rag", "index", a.folder, "--index-dir", str(idx), "--quiet"],
                         cwd=REPO, capture_output=True, text=True)
    t_cli = time.perf_counter() - t0
    line = next((ln for ln in out.stdout.splitlines() if "unchanged" in ln), out.stdout[-200:])
    print(f"re-index from the command line (new process): {line}  [{t_cli:.2f} s]")
    res["cli_cold_s"] = round(t_cli, 2)
    res["vectors"] = "real" if a.index_dir else "synthetic"
    print(json.dumps(res))
    if tmp is not None:
        tmp.cleanup()
    return 0 if res["chunks_embedded"] == 0 else 1


def build_synthetic(idx: Path, folder: Path) -> None:
    import numpy as np

    from rag.ingest import expand, file_hash, loaders
    from rag.library import Library
    from rag.store import FileCommit

    lib = Library(idx)
    lib.load()
    files, _ = expand([folder])
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    commits = []
    for f in files:
        data = f.read_bytes()
        st = f.stat()
        try:
            doc = loaders.load(f, data=data)
        except loaders.LoaderError:
            continue
        drafts = lib.chunker.chunk(doc)
        n = sum(len(d.views) for d in drafts)
        vecs = rng.standard_normal((n, lib.embedder.dim)).astype(np.float32)
        commits.append(FileCommit(str(f), f.name, file_hash(data), st.st_size, st.st_mtime_ns, doc.kind, doc.pages,
                                  doc.contents_pages, drafts, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)))
    lib.store.commit(commits)
    print(f"built: {len(commits)} files, {sum(len(c.drafts) for c in commits)} chunks, synthetic vectors "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
