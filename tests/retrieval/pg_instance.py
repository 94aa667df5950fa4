"""One app instance for the two-instance tests: a real Python process with its own Library on a shared
PostgreSQL library. `python pg_instance.py URI ingest PATH...` (waits for GO_FILE, when given in
$LRC_TEST_GO, after writing $LRC_TEST_READY), `... remove PATH`, `... search QUERY`; prints JSON."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    uri, action, *args = sys.argv[1:]
    from rag.library import Library

    lib = Library(uri, batch_chunks=int(os.environ.get("LRC_TEST_BATCH", "8")))
    lib.load()  # the model loaded and checked before the start signal: both instances then race
    ready, go = os.environ.get("LRC_TEST_READY"), os.environ.get("LRC_TEST_GO")
    if ready and go:
        Path(ready).write_text("ready")
        deadline = time.time() + 120
        while not Path(go).exists() and time.time() < deadline:
            time.sleep(0.01)
    if action == "ingest":
        r = lib.ingest(args)
        out = {"added": r.added, "updated": r.updated, "unchanged": r.unchanged, "failed": r.failed}
    elif action == "remove":
        out = {"removed": lib.remove(args[0])}
    else:
        out = {"hits": [h.chunk.source for h in lib.search(args[0], k=3)]}
    print(json.dumps(out))
    lib.backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
