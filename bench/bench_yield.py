"""Does a background ingest slow answering? TTFT of the chat's pipeline (SmolLM2, in-process) on an idle
machine, then while a `rag worker` on the same machine embeds a large job, at each worker niceness
(`rag worker --nice N`), in one run. The worker's own library is another folder: what is measured is the
competition for the cores, not for the index.

    python -m rag bench yield [--questions 8] [--nice 0,10,19] [--json FILE]

Issue 28: "while a large ingest runs, a question is answered with TTFT within 1.3x of an idle machine".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from rag import answer_eval, pipeline as pl  # noqa: E402
from rag.config import REPO_ROOT, settings  # noqa: E402


def _ttfts(questions: list[dict], options, lib) -> list[float]:
    async def run() -> list[float]:
        out = []
        for q in questions:
            rec = await answer_eval.answer_one(q["question"], q["history"], options, lib)
            if rec["error"]:
                raise RuntimeError(f"{q['id']}: {rec['error']}")
            if rec["ttft_s"] is not None:
                out.append(rec["ttft_s"])
        return out

    return asyncio.run(run())


def _worker(root: Path, nice: int, job_paths: list[Path]) -> tuple[subprocess.Popen, dict]:
    """A `rag worker` with its own embedded library under ``root``, a job of ``job_paths`` queued for it."""
    env = dict(os.environ, LRC_DATA_DIR=str(root / "data"), LRC_STORE="", PYTHONUNBUFFERED="1")
    queued = subprocess.run([sys.executable, "-m", "rag", "index", "--background", *map(str, job_paths)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    log = open(root / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rag", "worker", "--nice", str(nice)], cwd=REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, {"env": env, "queued": queued.stdout.strip()}


def _job(env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "rag", "jobs"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return done.stdout


def _in_process(root: Path, job_paths: list[Path], questions, options, lib, warmup_s: float, child: bool) -> dict:
    """The phase where the big job is ingested from a thread of this process into a library of its own,
    cancelled after the questions: in the thread itself (``ingest_here``: a small drop), or by a process of
    its own at niceness 10 (``ingest_in_child``: what the chat does with a drop above LRC_INGEST_CHILD_MB)."""
    import threading

    from rag.jobs.here import IngestCancelled, ingest_here, ingest_in_child, queue_of
    from rag.library import Library

    other = Library(root / ("child-index" if child else "in-process-index"))
    ingest = ingest_in_child if child else ingest_here
    failed: list[BaseException] = []

    def work() -> None:
        try:
            ingest(other, [str(p) for p in job_paths])
        except IngestCancelled:
            pass
        except BaseException as exc:  # said below
            failed.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    time.sleep(warmup_s)
    if not thread.is_alive():
        raise RuntimeError(f"the in-process ingest ended early: {failed}")
    t0 = time.monotonic()
    busy = _ttfts(questions, options, lib)
    seconds = time.monotonic() - t0
    job = queue_of(other).jobs(limit=1)[0]
    queue_of(other).cancel(job.id)  # the child's job too: it shares the library's store
    thread.join(120)
    phase = "chat drop above LRC_INGEST_CHILD_MB (rag.jobs.child, nice 10)" if child else "ingest in this process"
    print(f"{phase}: median {statistics.median(busy):.2f} s; job {job.id} at {job.progress()}", flush=True)
    return {"phase": phase, "ttft": busy, "asking_s": round(seconds, 1),
            "jobs": f"{job.id} running {job.progress()} files (cancelled after the questions)"}


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=8, help="questions per phase (R-admin facts)")
    ap.add_argument("--nice", default="0,10", help="worker niceness values to measure, comma-separated")
    ap.add_argument("--warmup-s", type=float, default=20.0, help="seconds the worker embeds before asking")
    ap.add_argument("--in-process", action="store_true",
                    help="also: the same job ingested by a thread of this process (a file dropped into the chat)")
    ap.add_argument("--json")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md as it is")
    args = ap.parse_args(argv)

    datasets = settings().datasets_dir
    doc = datasets / "pdfs" / "R-admin.pdf"
    big = sorted((datasets / "pdfs").glob("*.pdf"))  # the worker's job: every shared PDF (~2,000 pages)
    if not doc.is_file():
        print(f"missing {doc} (set LRC_DATASETS)", file=sys.stderr)
        return 2
    from engines.onnx.models import ModelCatalog
    from rag.library import Library

    model = ModelCatalog(**settings().catalog_config()).require("smollm2")
    options = pl.Options(engine="onnx", model=str(model))
    questions = answer_eval.set_queries(REPO_ROOT / "bench" / "data" / "answers", split="dev")[:args.questions]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-yield-") as tmp:
        root = Path(tmp)
        lib = Library(root / "ask-index")
        lib.ingest([doc])
        _ttfts(questions[:2], options, lib)  # warm the engine and the embedder
        idle = _ttfts(questions, options, lib)
        rows.append({"phase": "idle", "ttft": idle})
        print(f"idle: median {statistics.median(idle):.2f} s", flush=True)
        for nice in [int(n) for n in args.nice.split(",") if n.strip()]:
            wroot = root / f"worker-{nice}"
            wroot.mkdir()
            proc, info = _worker(wroot, nice, big)
            try:
                time.sleep(args.warmup_s)  # the model loaded, the first batches embedding
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker stopped: {(wroot / 'worker.log').read_text()[-2000:]}")
                t0 = time.monotonic()
                busy = _ttfts(questions, options, lib)
                seconds = time.monotonic() - t0
                jobs = _job(info["env"])
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            rows.append({"phase": f"worker nice {nice}", "ttft": busy, "asking_s": round(seconds, 1), "jobs": jobs})
            print(f"nice {nice}: median {statistics.median(busy):.2f} s; {jobs.strip().splitlines()[-1:]}", flush=True)

        if args.in_process:  # a thread of this process, then what the chat does with a large drop
            rows.append(_in_process(root, big, questions, options, lib, args.warmup_s, child=False))
            rows.append(_in_process(root, big, questions, options, lib, args.warmup_s, child=True))

    base = statistics.median(rows[0]["ttft"])
    lines = ["| phase | TTFT median | p90 | median × idle | the worker's job after the questions |",
             "|---|---|---|---|---|"]
    for r in rows:
        med = statistics.median(r["ttft"])
        job = r.get("jobs", "").strip().splitlines()[-1] if r.get("jobs") else "–"
        lines.append(f"| {r['phase']} | {med:.2f} s | {_p(r['ttft'], 0.9):.2f} s | {med / base:.2f}× | {job} |")
    body = ("\n".join(lines) + "\n\n"
            f"{len(questions)} R-admin questions (dev) answered one after another by SmolLM2 in this process, from a "
            "library of R-admin.pdf; beside them a `rag worker` embeds every shared PDF into a library of its own. "
            f"Command: `{benchlib.command_line('yield', argv if argv is not None else sys.argv[1:])}`. "
            f"{benchlib.machine_note()}.\n")
    print(body)
    if not args.no_write:
        benchlib.write_section("Answering while a worker ingests", body)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
