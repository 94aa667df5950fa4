"""The embedder on ONNX Runtime against sentence-transformers (LRC_EMBED_RUNTIME=onnxruntime / sentence-transformers), side by side.

    python -m rag bench embedder [--rounds 2] [--passages 1024] [--no-write]

Each round starts one fresh process per runtime, alternating, and reads from it: the CPU seconds and the wall
time from the interpreter's start until the embedder is loaded and has encoded one query (what every process
that embeds pays: the chat server, `rag index`, `rag ask`, an ingest child, `rag worker`), the median time to
encode a question alone (the 106 questions of the answer set on R-admin.pdf, bench/data/answers, one by one),
and passages per second with their CPU for python-docs passages (the views that ingest embeds, batches of 32).
Both processes write their vectors; the largest difference between the two runtimes' vectors is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TITLE = "The embedder on ONNX Runtime"

CHILD = r"""
import json, resource, statistics, sys, time
t_start = float(sys.argv[1]); texts = json.load(open(sys.argv[2])); out = sys.argv[3]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
from rag.embedder import Embedder
import numpy as np
e = Embedder.get(); e.encode_query("warm up")
ready = {"start_cpu": cpu(), "start_wall": time.time() - t_start, "runtime": e.runtime,
         "torch_imported": "torch" in sys.modules}
qs = []
for q in texts["questions"]:
    t0 = time.perf_counter(); qv = e.encode_query(q); qs.append(time.perf_counter() - t0)
c0, t0 = cpu(), time.perf_counter(); pv = e.encode(texts["passages"], batch_size=32); wall = time.perf_counter() - t0
np.save(out, np.vstack([np.stack([e.encode_query(q) for q in texts["questions"][:20]]), pv]))
print(json.dumps({**ready, "query_ms": 1000 * statistics.median(qs), "passages_per_s": len(pv) / wall,
                  "passage_cpu_ms": 1000 * (cpu() - c0) / len(pv)}))
"""


def child(runtime: str, texts_file: Path, out: Path) -> dict:
    env = dict(os.environ, LRC_EMBED_RUNTIME=runtime)
    proc = subprocess.run([sys.executable, "-c", CHILD, repr(time.time()), str(texts_file), str(out)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"the {runtime} process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="rounds (each starts one process per runtime)")
    ap.add_argument("--passages", type=int, default=1024, help="python-docs passages encoded in a batch")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md as it is")
    args = ap.parse_args()
    import numpy as np

    from rag import answer_eval
    from rag.config import REPO_ROOT
    from rag.embedder import ONNXRUNTIME, SENTENCE_TRANSFORMERS, Embedder
    from rag.ingest.chunking import Chunker

    questions = [q["question"] for q in answer_eval.set_queries(REPO_ROOT / "bench" / "data" / "answers")]
    emb = Embedder.get()
    drafts = benchlib.python_docs_drafts(Chunker(emb.count_tokens, emb.window), limit=args.passages)
    passages = [v for d in drafts for v in d.views][:args.passages]
    rows: dict[str, list[dict]] = {SENTENCE_TRANSFORMERS: [], ONNXRUNTIME: []}
    with tempfile.TemporaryDirectory(prefix="bench-embedder-") as tmp:
        texts = Path(tmp) / "texts.json"
        texts.write_text(json.dumps({"questions": questions, "passages": passages}))
        for r in range(args.rounds):
            for runtime in (SENTENCE_TRANSFORMERS, ONNXRUNTIME):
                got = child(runtime, texts, Path(tmp) / f"{runtime}.npy")
                rows[runtime].append(got)
                print(f"round {r + 1}, {runtime}: {json.dumps(got)}", flush=True)
        diff = float(np.abs(np.load(Path(tmp) / f"{SENTENCE_TRANSFORMERS}.npy") - np.load(Path(tmp) / f"{ONNXRUNTIME}.npy")).max())
    med = {rt: {k: statistics.median(x[k] for x in rows[rt])
                for k in ("start_cpu", "start_wall", "query_ms", "passages_per_s", "passage_cpu_ms")} for rt in rows}
    lines = [f"`{benchlib.command_line('embedder', sys.argv[1:])}`, {benchlib.today()}; {benchlib.machine_note()}.", "",
             f"{args.rounds} rounds, one fresh process per runtime each (alternating); medians over rounds. Start = "
             "from the interpreter's start to the embedder loaded and one query encoded; a question = one of the "
             f"{len(questions)} questions of bench/data/answers alone (median); passages = {len(passages)} python-docs "
             "views in batches of 32.", "",
             "| LRC_EMBED_RUNTIME | start: CPU s | start: wall s | a question: ms | passages / s | CPU ms per passage | "
             "torch imported |", "|---|---:|---:|---:|---:|---:|---|"]
    for rt, label in ((SENTENCE_TRANSFORMERS, f"{SENTENCE_TRANSFORMERS} (torch; before)"), (ONNXRUNTIME, f"{ONNXRUNTIME} (default; after)")):
        m = med[rt]
        lines.append(f"| {label} | {m['start_cpu']:.2f} | {m['start_wall']:.2f} | {m['query_ms']:.1f} | "
                     f"{m['passages_per_s']:.0f} | {m['passage_cpu_ms']:.1f} | "
                     f"{'yes' if rows[rt][0]['torch_imported'] else 'no'} |")
    lines += ["", f"Largest difference between the two runtimes' vectors (20 questions and {len(passages)} passages, "
              f"unit vectors of 384 floats): {diff:.1e}."]
    summary = {"questions": len(questions), "passages": len(passages), "max_abs_diff": diff,
               **{rt: {k: round(v, 4) for k, v in med[rt].items()} for rt in med}}
    return benchlib.report(TITLE, lines, summary, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
