"""One ingest run by a process of its own at a lower priority: ``python -m rag.jobs.child SPEC``.

The chat server ingests a large drop this way (``rag.jobs.here.ingest_in_child``): embedding in the server's
own process takes the cores from every answer (TTFT 5.7x of idle, against 1.04x beside a process at
niceness 10: docs/BENCHMARKS.md, "Answering while a worker ingests"). SPEC is JSON: paths, display_names,
force, owner, index_dir (None: the settings' library, a database's URI stays in the environment), nice. The
run is a job like every ingest (``ingest_here``): a Cancel in the Library view stops it. This process
prints one JSON object per line: ``{"progress": {...}}`` as it goes, then ``{"report": {...}}``,
``{"cancelled": "..."}`` or ``{"error": "...", "category": "..."}``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys


def _say(**item) -> None:
    print(json.dumps(item), flush=True)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    if spec.get("nice") and hasattr(os, "nice"):
        os.nice(int(spec["nice"]))  # before the model is loaded: its threads inherit it
    from engines.base import category_of
    from rag.jobs.here import IngestCancelled, ingest_here
    from rag.library import Library

    try:
        lib = Library(spec["index_dir"]) if spec.get("index_dir") else Library.shared()
        report = ingest_here(lib, spec["paths"], lambda p: _say(progress=dataclasses.asdict(p)),
                             spec.get("display_names") or None, bool(spec.get("force")), spec.get("owner"))
    except IngestCancelled as exc:
        _say(cancelled=str(exc))
        return 0
    except Exception as exc:
        _say(error=str(exc) or type(exc).__name__, category=category_of(exc).value)
        return 0
    _say(report=dataclasses.asdict(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
