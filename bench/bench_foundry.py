"""Local in-process versus local service: the same model answering the same prompts in one run.

    python -m rag bench foundry [--model smollm2] [--sizes 100,500,1500] [--repeats 2] [--max-new-tokens 128]

Starts a real Foundry Local service (scripts/foundry_local.py, its own data folder and HOME in a
temporary folder, free loopback port) with the model, and the in-process ONNX Runtime GenAI engine
with the same model folder. For RAG-shaped prompts of about 100, 500 and 1,500 tokens (passages from
docs_corpus/user-guide.md plus a question), it measures time to first token and decode tokens/s
through each, greedy, after one warm-up answer on each. Engines take turns so neither gets a quieter
machine. Prints a side-by-side table with the Foundry/in-process ratios; the last line is a JSON
summary.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engines import registry  # noqa: E402
from engines.base import GenerationOptions  # noqa: E402
from engines.foundry.engine import FoundryEngine  # noqa: E402
from engines.onnx.models import ModelCatalog  # noqa: E402
from rag.config import settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Service  # noqa: E402  (bench/benchlib.py: the Foundry Local launcher in a child process)

SYSTEM = ("You answer questions about the user's documents. Use only the numbered passages; "
          "cite them like [1]. If they do not contain the answer, say so.")
QUESTION = "How do I add my own documents, and which file types are accepted?"
CORPUS = REPO_ROOT / "docs_corpus" / "user-guide.md"


async def build_prompt(engine, target: int) -> tuple[list[dict], int]:
    """System + numbered passages from the user guide + question, about ``target`` tokens (exact count)."""
    words = CORPUS.read_text().split()
    words = (words * (1 + 3 * target // max(len(words), 1)))  # long sizes may need the guide twice

    def messages(n: int) -> list[dict]:
        per = 120
        chunks = [" ".join(words[i:min(i + per, n)]) for i in range(0, n, per)]
        passages = "\n\n".join(f"[{k + 1}] {c}" for k, c in enumerate(chunks))
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {QUESTION}"}]

    lo, hi = 0, len(words)
    while lo < hi:  # the most words whose prompt stays within target tokens
        mid = (lo + hi + 1) // 2
        if await engine.count_tokens(messages(mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    msgs = messages(lo)
    return msgs, await engine.count_tokens(msgs)


async def measure(engine, messages, max_new_tokens: int) -> dict:
    gen = engine.stream(messages, GenerationOptions(max_new_tokens=max_new_tokens, temperature=0.0))
    text = "".join([piece async for piece in gen])
    u = gen.usage
    return {"ttft_s": u.time_to_first_token, "decode_tok_s": u.tokens_per_second,
            "completion_tokens": u.completion_tokens, "prompt_tokens": u.prompt_tokens,
            "total_s": u.total_time, "text": text}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs if r[key] is not None)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


async def run(args) -> dict:
    model_dir = ModelCatalog(**settings().catalog_config()).resolve(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-foundry-"))
    service = Service(model_dir, tmp)
    onnx = registry.create("onnx", default_model=str(model_dir))
    foundry = None
    try:
        await asyncio.to_thread(service.wait_ready)
        print(f"Foundry Local ready in {service.ready_seconds:.1f}s at {service.base_url} ({service.model})",
              flush=True)
        foundry = FoundryEngine(base_url=service.base_url, model=service.model, first_byte_timeout=600)
        warm = [{"role": "user", "content": "Say hello."}]
        for eng in (onnx, foundry):  # load/connect outside the measurements
            await measure(eng, warm, 8)
        rows = []
        for size in args.sizes:
            msgs, ptoks = await build_prompt(onnx, size)
            runs = {"onnx": [], "foundry": []}
            for _ in range(args.repeats):
                for name, eng in (("onnx", onnx), ("foundry", foundry)):
                    runs[name].append(await measure(eng, msgs, args.max_new_tokens))
            same = runs["onnx"][0]["text"] == runs["foundry"][0]["text"]
            row = {"target_tokens": size, "prompt_tokens": ptoks,
                   "completion_tokens": {n: runs[n][0]["completion_tokens"] for n in runs},
                   "same_answer": same}
            for name in runs:
                row[f"{name}_ttft_s"] = round(_median(runs[name], "ttft_s"), 3)
                row[f"{name}_decode_tok_s"] = round(_median(runs[name], "decode_tok_s"), 1)
            row["ttft_ratio"] = _ratio(row["foundry_ttft_s"], row["onnx_ttft_s"])
            row["decode_ratio"] = _ratio(row["foundry_decode_tok_s"], row["onnx_decode_tok_s"])
            rows.append(row)
            print(f"  {ptoks:>5} prompt tokens: TTFT in-process {row['onnx_ttft_s']:.2f}s, "
                  f"Foundry {row['foundry_ttft_s']:.2f}s; decode {row['onnx_decode_tok_s']:.0f} vs "
                  f"{row['foundry_decode_tok_s']:.0f} tok/s; same answer: {same}", flush=True)
        return {"service_ready_s": round(service.ready_seconds, 2), "rows": rows}
    finally:
        if foundry is not None:
            await foundry.aclose()
        await onnx.aclose()
        await asyncio.to_thread(service.stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Foundry Local vs the in-process engine, same model, same prompts.")
    p.add_argument("--model", default="smollm2", help="provisioned model name or folder (default smollm2)")
    p.add_argument("--sizes", default="100,500,1500", help="prompt sizes in tokens (default 100,500,1500)")
    p.add_argument("--repeats", type=int, default=2, help="answers per engine and size; medians shown")
    p.add_argument("--max-new-tokens", type=int, default=128)
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    t0 = time.perf_counter()
    result = asyncio.run(run(args))
    print()
    head = (f"{'prompt tok':>10} | {'TTFT in-proc':>12} {'TTFT Foundry':>12} {'ratio':>6} | "
            f"{'decode in-proc':>14} {'decode Foundry':>14} {'ratio':>6} | same answer")
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        print(f"{r['prompt_tokens']:>10} | {r['onnx_ttft_s']:>11.2f}s {r['foundry_ttft_s']:>11.2f}s "
              f"{r['ttft_ratio'] or 0:>6.2f} | {r['onnx_decode_tok_s']:>10.1f} t/s {r['foundry_decode_tok_s']:>10.1f} t/s "
              f"{r['decode_ratio'] or 0:>6.2f} | {r['same_answer']}")
    print("ratio = Foundry Local / in-process (TTFT: >1 means the service is slower to start answering; "
          "decode: <1 means it generates more slowly)")
    summary = {"bench": "foundry", "model": args.model, "max_new_tokens": args.max_new_tokens,
               "repeats": args.repeats, "cpus": os.cpu_count(), "python": platform.python_version(),
               "seconds": round(time.perf_counter() - t0, 1), **result}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
