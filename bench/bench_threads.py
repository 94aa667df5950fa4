"""The in-process engine with one generation thread against the machine's cores, same model, same prompts, same run.

    python -m rag bench threads [--model smollm2] [--sizes 300 700 1500] [--repeats 3] [--threads 1 2]

ONNX Runtime GenAI runs a model on one thread unless told otherwise; the app now asks for LRC_ENGINE_THREADS
(default: the machine's cores). For each prompt size, an engine per thread count answers the same RAG-like chat
prompt greedily, taking turns (who goes first alternates), ``--repeats`` times; medians are reported: time to
first token, decode tokens/s, and the worker's CPU seconds per answer (what several users at once pay). The
last line printed is a JSON summary.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_engine import _median, engine_run, make_messages  # noqa: E402
from engines.onnx.engine import OnnxGenaiEngine  # noqa: E402
from engines.onnx.models import ModelCatalog  # noqa: E402
from rag.config import cpu_threads, offline_env, settings  # noqa: E402

offline_env()


def _cpu(engine: OnnxGenaiEngine) -> float:
    t = psutil.Process(engine.worker_pid).cpu_times()
    return t.user + t.system


async def measured(engine: OnnxGenaiEngine, messages: list[dict], max_new: int) -> dict:
    before = _cpu(engine)
    run = await engine_run(engine, messages, max_new)
    return {**run, "worker_cpu_s": _cpu(engine) - before}


async def main_async(args) -> dict:
    import onnxruntime_genai as og

    path = ModelCatalog(**settings().catalog_config()).resolve(args.model)
    tokenizer = og.Tokenizer(og.Model(str(path)))
    engines = {n: OnnxGenaiEngine(default_model=str(path), threads=n) for n in args.threads}
    results = []
    try:
        warm = make_messages(tokenizer, 50)
        for engine in engines.values():  # worker start + model load, first-run allocations
            await engine_run(engine, warm, 8)
        for size in args.sizes:
            messages = make_messages(tokenizer, size)
            runs: dict[int, list[dict]] = {n: [] for n in engines}
            for i in range(args.repeats):
                order = list(engines) if i % 2 == 0 else list(reversed(engines))
                for n in order:
                    await asyncio.sleep(args.settle)
                    runs[n].append(await measured(engines[n], messages, args.max_new_tokens))
            row = {"target_tokens": size, **{f"threads_{n}": _median(r) for n, r in runs.items()}, "runs": runs}
            results.append(row)
            print(f"{int(row[f'threads_{args.threads[0]}']['prompt_tokens']):>5} prompt tok | " + " | ".join(
                f"{n} thread(s): TTFT {row[f'threads_{n}']['ttft_s']:.2f}s decode {row[f'threads_{n}']['decode_tps']:.1f} tok/s "
                f"CPU {row[f'threads_{n}']['worker_cpu_s']:.2f}s" for n in engines), flush=True)
    finally:
        for engine in engines.values():
            await engine.aclose()
    return {"bench": "threads", "model": path.name, "cores": os.cpu_count(), "default_threads": cpu_threads(),
            "repeats": args.repeats, "max_new_tokens": args.max_new_tokens, "results": results,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="model id, alias or folder (default: smollm2)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 700, 1500], help="prompt sizes in tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, cpu_threads()], help="thread counts to compare")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--settle", type=float, default=0.5, help="seconds of quiet before each measured run")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
