"""Many streamed clients at once, with the engine's fair queue (rag.scheduler) on and off (issue 27).

    python -m rag bench load [--clients 1,8] [--modes on,off,on:2] [--max-new-tokens 128] [-k 2] [--greedy]
                             [--write-benchmarks]

A library of docs_corpus/ (user guide + FAQ) in a temporary data folder; for each of queue on
(LRC_QUEUE=1, the default slots; "on:N": N slots) and off (LRC_QUEUE=0: every answer starts at once and the engine
interleaves them), ``python -m rag serve`` over it (bench_api.Server: onnx, SmolLM2, no API key). One
warm-up answer, then for each client count N: N ``/v1/chat/completions`` streams sent at once (httpx,
each with its own ``user``, all the same real question, greedy, the same token limit), each timed from
sending its request: its first sign of life (the first SSE line: a place in line or text), its first
text (the first content chunk: the quote and the model's first token travel together on /v1), and
``data: [DONE]``. A lone answer (N = 1, same server) is the yardstick. Per N: first text p50/p95/max,
the whole answer p50/mean/max, the first arriving client's whole answer, aggregate completion
tokens/s (all tokens / first request -> last [DONE]), the first answer to end (all are sent at
once, so the first asker is whoever is served first), answers complete (``[DONE]``, no error) and
identical to the lone answer (greedy: the same question gives the same text, so a mixed-up stream
shows), 429s, and with the queue on the worst time to the first sign of life (the place shown).

``--greedy``: one user sends ten requests at once and, a moment later, another user one: how long that
one waits, next to a lone answer (the target: at most one answer's time more).

Prints a table and, last, a JSON summary; ``--write-benchmarks`` writes the section "Many users at once
(issue 27)" of docs/BENCHMARKS.md. The servers are stopped at the end, also on an error or Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]  # the repo, bench/

import benchlib  # noqa: E402
from bench_api import Server  # noqa: E402

SECTION = "Many users at once (issue 27)"
MODEL_ID = "rag:smollm2"
QUESTION = "How do I add documents to the library?"


async def one(client, url: str, user: str, max_new_tokens: int, t0: float | None = None) -> dict:
    """One streamed answer; times in seconds from ``t0`` (default: when it is sent)."""
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": QUESTION}], "stream": True, "user": user,
            "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_new_tokens}
    sent = time.perf_counter()
    t0 = sent if t0 is None else t0
    rec = {"user": user, "sent": sent - t0, "status": None, "alive": None, "first": None, "done": None,
           "text": "", "tokens": 0, "error": None, "position": None}
    async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
        rec["status"] = r.status_code
        if r.status_code != 200:
            rec["error"] = (await r.aread()).decode(errors="replace")[:300]
            return rec
        rec["position"] = r.headers.get("x-queue-position")
        async for line in r.aiter_lines():
            now = time.perf_counter() - t0
            if line and rec["alive"] is None:
                rec["alive"] = now
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data.strip() == "[DONE]":
                rec["done"] = now
                continue
            obj = json.loads(data)
            rec["error"] = obj.get("error") or rec["error"]
            if obj.get("usage"):
                rec["tokens"] = obj["usage"].get("completion_tokens", 0)
            for choice in obj.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    rec["first"] = now if rec["first"] is None else rec["first"]
                    rec["text"] += text
    return rec


def _pct(xs: list[float], q: float) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


async def burst(url: str, n: int, max_new_tokens: int, lone_text: str | None) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        t0 = time.perf_counter()
        recs = await asyncio.gather(*(one(client, url, f"user{i}", max_new_tokens, t0) for i in range(n)))
    ok = [r for r in recs if r["status"] == 200 and r["done"] is not None and not r["error"]]
    end = max((r["done"] for r in ok), default=None)
    return {"clients": n, "completed": len(ok), "rate_limited": sum(r["status"] == 429 for r in recs),
            "identical": sum(r["text"] == lone_text for r in ok) if lone_text is not None else None,
            "first_p50": _pct([r["first"] for r in ok], 0.5), "first_p95": _pct([r["first"] for r in ok], 0.95),
            "first_max": _pct([r["first"] for r in ok], 1.0),
            "alive_max": _pct([r["alive"] for r in ok], 1.0),
            "done_p50": _pct([r["done"] for r in ok], 0.5), "done_mean": statistics.mean(r["done"] for r in ok) if ok else None,
            "done_max": end, "first_served_done": min((r["done"] for r in ok), default=None),
            "tokens_per_s": sum(r["tokens"] for r in ok) / end if end else None,
            "text": recs[0]["text"]}


async def greedy(url: str, max_new_tokens: int) -> dict:
    """Ten requests of one user, then one of another: the other's whole answer."""
    import httpx

    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=16)) as client:
        t0 = time.perf_counter()
        hog = [asyncio.create_task(one(client, url, "greedy", max_new_tokens, t0)) for _ in range(10)]
        await asyncio.sleep(0.5)
        other = await one(client, url, "other", max_new_tokens)
        hogs = await asyncio.gather(*hog)
    return {"other_done": other["done"], "other_status": other["status"],
            "greedy_completed": sum(r["done"] is not None for r in hogs), "greedy_429": sum(r["status"] == 429 for r in hogs)}


async def measure(url: str, counts: list[int], max_new_tokens: int, with_greedy: bool, log) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=900) as client:
        await one(client, url, "warm", max_new_tokens)  # the model loaded
        lone = await one(client, url, "lone", max_new_tokens)
    log(f"  lone answer: first text {lone['first']:.2f} s, done {lone['done']:.2f} s")
    out = {"lone_first": lone["first"], "lone_done": lone["done"], "bursts": []}
    for n in counts:
        r = await burst(url, n, max_new_tokens, lone["text"])
        r.pop("text")
        log(f"  {n} clients: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})}")
        out["bursts"].append(r)
    if with_greedy:
        out["greedy"] = await greedy(url, max_new_tokens)
        log(f"  greedy user: {out['greedy']}")
    return out


def _s(x) -> str:
    return "–" if x is None else f"{x:.1f} s"


def table(results: dict) -> str:
    rows = ["| queue | clients | first text p50 / p95 / max | whole answer p50 / mean / max | first served done "
            "| place shown by | tokens/s | complete / identical | 429 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        for b in r["bursts"]:
            rows.append(f"| {mode} | {b['clients']} | {_s(b['first_p50'])} / {_s(b['first_p95'])} / {_s(b['first_max'])} "
                        f"| {_s(b['done_p50'])} / {_s(b['done_mean'])} / {_s(b['done_max'])} | {_s(b['first_served_done'])} "
                        f"| {_s(b['alive_max'])} | {b['tokens_per_s'] or 0:.1f} | {b['completed']}/{b['clients']} / "
                        f"{b['identical']} | {b['rate_limited']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="Many streamed /v1 clients at once, the fair queue on and off.")
    p.add_argument("--clients", default="1,8", help="client counts, comma-separated (default 1,8)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer tokens (default 128)")
    p.add_argument("-k", type=int, default=2, help="passages per question (default 2)")
    p.add_argument("--slots", type=int, default=None, help="LRC_ONNX_SLOTS for the queue-on server (default: the setting's)")
    p.add_argument("--modes", default="on,off", help="queue on, off, on:N (N slots), comma-separated (default on,off)")
    p.add_argument("--greedy", action="store_true", help="also: one user's ten requests against another's one")
    p.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    from rag.config import settings
    from rag.library import Library

    t0, results = time.perf_counter(), {}
    saved = {k: os.environ.get(k) for k in ("LRC_QUEUE", "LRC_ONNX_SLOTS", "LRC_MAX_WAITING")}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        data = Path(tmp) / "data"
        print(f"ingest: {Library(data / 'index').ingest([settings().docs_corpus]).summary()}", flush=True)
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            os.environ["LRC_QUEUE"] = "0" if mode == "off" else "1"
            os.environ["LRC_MAX_WAITING"] = str(max(counts) + 16)  # the bench measures waiting, not refusals
            slots = mode.partition(":")[2] or args.slots  # "on:2": two answers at once
            if slots is not None:
                os.environ["LRC_ONNX_SLOTS"] = str(slots)
            else:
                os.environ.pop("LRC_ONNX_SLOTS", None)
            server = Server(data, args.k, Path(tmp) / f"server-{mode}.log")
            try:
                server.wait_ready()
                print(f"queue {mode}: server ready in {server.ready_seconds:.1f} s", flush=True)
                results[mode] = asyncio.run(measure(server.url, counts, args.max_new_tokens,
                                                    args.greedy and mode == "on", lambda m: print(m, flush=True)))
            finally:
                server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    seconds = time.perf_counter() - t0
    tab = table(results)
    print()
    print(tab)
    slots = args.slots or settings().onnx_slots
    summary = {"bench": "load", "k": args.k, "max_new_tokens": args.max_new_tokens, "slots": slots,
               "cpus": os.cpu_count(), "seconds": round(seconds, 1), **results}
    lines = [
        "**Question:** with many people asking at once, does a fair queue in front of the engine (issue 27) "
        "answer the early askers sooner than letting every answer run at once, without costing throughput?",
        f"**Command:** `{benchlib.command_line('load', argv)}` (bench/bench_load.py; its docstring says what each "
        "figure is).",
        "",
        f"Run {benchlib.today()} ({round(seconds)} s in all), {benchlib.machine_note()}. `docs_corpus/` library, "
        f"`python -m rag serve` (onnx, SmolLM2 int8, top {args.k}, at most {args.max_new_tokens} answer tokens, "
        f"greedy), queue on = LRC_ONNX_SLOTS={slots} (on:N: N); every client a different user asking the same question at "
        f"the same moment. Lone answer (queue on): first text {_s(results.get('on', {}).get('lone_first'))}, done "
        f"{_s(results.get('on', {}).get('lone_done'))}.",
        "",
        tab,
    ]
    if "greedy" in results.get("on", {}):
        g = results["on"]["greedy"]
        lines += ["", f"Greedy user (queue on): ten requests from one user, then one from another: the other's "
                      f"whole answer in {_s(g['other_done'])} (a lone answer: {_s(results['on']['lone_done'])})."]
    return benchlib.report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
