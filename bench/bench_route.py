"""Routing ("auto" engine) costs, measured side by side with the direct engine in one run.

    python -m rag bench route [--questions 10] [--fault-questions 5] [--rounds 3] [--deadline 2]
                              [-k 2] [--max-tokens 16] [--index-dir DIR] [--write-benchmarks]

A library is indexed from docs_corpus/ (a temporary folder unless --index-dir), and questions about
those documents are answered through ``rag.pipeline.answer`` (greedy, ``--max-tokens`` tokens):

(a) The router's own overhead: rules with one target, onnx:smollm2 (a temporary rules.toml named by
    LRC_ROUTING, read per answer as the chat does), answered with Options(engine="auto") versus
    Options(engine="onnx", model="smollm2"), the two alternating per question (and their order
    swapped each round). Reported: the median of the per-question differences (auto minus direct) of
    the time to the first Token event, of the total, and of "passages ready -> the engine's request"
    (the work done between the quote and the model's request: rules, ordering, resolving the target;
    the one part that differs). Greedy: both write the same tokens, so the difference is routing.
(b) A slow first token: rules [foundry target served by a real HTTP server started here on
    127.0.0.1 that accepts the request, sends the response headers and then nothing, with
    first_token_deadline_s = --deadline; then onnx:smollm2]. Reported per question: the Foundry
    request -> the fallback's first Token, minus the deadline (target <= 1 s), split into the
    deadline's end -> the fallback's request, and the fallback's own time to first token (next to the
    direct engine's, answered alternately).
(c) The service down: the same rules with the foundry target on a free port where nothing listens:
    the question -> the fallback's first token, versus the direct engine's.

The Foundry engine is pointed at each server through its settings (``FOUNDRY_BASE_URL``: the registry
gives the instance made for that setting). Engine requests are timed by wrapping the shared
engines' ``stream``. Prints a table and, last, a JSON summary; ``--write-benchmarks`` writes the
section "Routing (issue 12)" of docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

SECTION = "Routing (issue 12)"
QUESTIONS = [
    "How do I add documents to the library?",
    "Which file types can I index?",
    "What is the largest file the app accepts, and how do I change it?",
    "How do I remove a document from the library?",
    "How do I use Phi-4-mini with the in-process engine?",
    "How do I connect the app to a Foundry Local endpoint?",
    "What does the temperature setting do?",
    "What happens when the passages do not fit the model's context?",
    "How fast is indexing on a two-core laptop?",
    "What should I do when a scanned PDF was not indexed?",
]
ONE_TARGET = """
[[target]]
name = "local"
engine = "onnx"
model = "smollm2"
"""
FAULT_FIRST = """
[[target]]
name = "service"
engine = "foundry"
model = "slow-model"
first_token_deadline_s = {deadline}

[[target]]
name = "local"
engine = "onnx"
model = "smollm2"
"""


# ------------------------------------------------------------------------------------ a slow service
class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        data = json.dumps({"object": "list", "data": [{"id": "slow-model", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        self.send_response(200)  # accepted: headers, then not a byte of the answer
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self.server.stop.wait(120)
        self.close_connection = True


class SlowServer:
    """An OpenAI-style endpoint on 127.0.0.1 that lists one model and never sends an answer."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
        self.httpd.daemon_threads = True
        self.httpd.requests = 0
        self.httpd.stop = threading.Event()
        self.httpd.handle_error = lambda *a: None  # the client hangs up at its deadline: no noise
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "SlowServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ timing
class Requests:
    """Wraps the shared engines' ``stream``: when each engine was asked to generate."""

    def __init__(self):
        self.at: dict[str, list[float]] = {}

    def watch(self, name: str, engine) -> None:
        original = engine.stream

        def stream(*args, **kwargs):
            self.at.setdefault(name, []).append(time.perf_counter())
            return original(*args, **kwargs)

        engine.stream = stream

    def since(self, name: str, t0: float) -> float | None:
        times = [t for t in self.at.get(name, []) if t >= t0]
        return times[0] if times else None


async def timed(question: str, opts, lib, requests: Requests) -> dict:
    """One answer through pipeline.answer, with the moments that matter (perf_counter seconds)."""
    from rag import pipeline as pl

    t0 = time.perf_counter()
    rec = {"t0": t0, "ready": None, "first": None, "text": "", "routed": None, "error": None, "fell_back": False}
    async for ev in pl.answer(question, [], opts, lib=lib):
        now = time.perf_counter()
        if isinstance(ev, (pl.Retrieved, pl.Quoted)):
            rec["ready"] = now  # the last one before the model: passages (and quote) ready
        elif isinstance(ev, pl.Token) and rec["first"] is None:
            rec["first"] = now
        elif isinstance(ev, pl.Routed):
            rec["routed"] = ev.text
        elif isinstance(ev, pl.Done):
            rec["text"] = ev.text
        elif isinstance(ev, pl.Failed):
            rec["error"] = ev.text
    rec["end"] = time.perf_counter()
    rec["onnx_request"] = requests.since("onnx", t0)
    rec["foundry_request"] = requests.since("foundry", t0)
    if rec["error"] or rec["first"] is None:
        raise SystemExit(f"{question!r} ({opts.engine}): no answer: {rec['error']}")
    return rec


def _ms(x: float) -> float:
    return round(x * 1000, 1)


def _med(xs) -> float:
    return statistics.median(list(xs))


# ------------------------------------------------------------------------------------ the three parts
async def overhead(qs, direct, auto, lib, requests, rounds: int, log) -> dict:
    diffs = {"first": [], "total": [], "pre_request": [], "ready_first": [], "request_first": []}
    abs_ = {"direct_first": [], "auto_first": [], "direct_pre": [], "auto_pre": []}
    same = 0
    for r in range(rounds):
        for i, q in enumerate(qs):
            order = [("direct", direct), ("auto", auto)]
            if (i + r) % 2:
                order.reverse()
            got = {name: await timed(q, opts, lib, requests) for name, opts in order}
            d, a = got["direct"], got["auto"]
            same += d["text"] == a["text"]
            first = {k: v["first"] - v["t0"] for k, v in got.items()}
            pre = {k: v["onnx_request"] - v["ready"] for k, v in got.items()}
            diffs["ready_first"].append((a["first"] - a["ready"]) - (d["first"] - d["ready"]))
            diffs["request_first"].append((a["first"] - a["onnx_request"]) - (d["first"] - d["onnx_request"]))
            diffs["first"].append(first["auto"] - first["direct"])
            diffs["total"].append((a["end"] - a["t0"]) - (d["end"] - d["t0"]))
            diffs["pre_request"].append(pre["auto"] - pre["direct"])
            abs_["direct_first"].append(first["direct"])
            abs_["auto_first"].append(first["auto"])
            abs_["direct_pre"].append(pre["direct"])
            abs_["auto_pre"].append(pre["auto"])
            log(f"  (a) round {r + 1} q{i + 1}: first token auto-direct {_ms(diffs['first'][-1]):+.1f} ms, "
                f"pre-request {_ms(diffs['pre_request'][-1]):+.1f} ms, same answer {d['text'] == a['text']}")
    n = len(diffs["first"])
    def iqr(xs):
        q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
        return [_ms(q[0]), _ms(q[2])]

    return {"answers_per_side": n, "same_answer": same,
            "first_token_diff_ms": _ms(_med(diffs["first"])), "total_diff_ms": _ms(_med(diffs["total"])),
            "first_token_diff_iqr_ms": iqr(diffs["first"]),
            "ready_to_first_token_diff_ms": _ms(_med(diffs["ready_first"])),
            "ready_to_first_token_diff_iqr_ms": iqr(diffs["ready_first"]),
            "request_to_first_token_diff_ms": _ms(_med(diffs["request_first"])),
            "pre_request_diff_ms": _ms(_med(diffs["pre_request"])),
            "direct_first_token_ms": _ms(_med(abs_["direct_first"])), "auto_first_token_ms": _ms(_med(abs_["auto_first"])),
            "direct_pre_request_ms": _ms(_med(abs_["direct_pre"])), "auto_pre_request_ms": _ms(_med(abs_["auto_pre"]))}


async def slow_first_token(qs, direct, auto, lib, requests, deadline: float, log) -> dict:
    rows = []
    with SlowServer() as srv:
        await _point_foundry(srv.base_url, requests)
        await timed(qs[0], auto, lib, requests)  # warm-up (connection, listing)
        for i, q in enumerate(qs):
            order = [("direct", direct), ("auto", auto)] if i % 2 == 0 else [("auto", auto), ("direct", direct)]
            got = {name: await timed(q, opts, lib, requests) for name, opts in order}
            a, d = got["auto"], got["direct"]
            if a["foundry_request"] is None or a["onnx_request"] is None:
                raise SystemExit(f"(b) {q!r}: the slow target was not tried first: {a['routed']}")
            row = {"beyond_deadline": a["first"] - a["foundry_request"] - deadline,
                   "switch": a["onnx_request"] - (a["foundry_request"] + deadline),
                   "fallback_ttft": a["first"] - a["onnx_request"],
                   "direct_ttft": d["first"] - d["onnx_request"], "routed": a["routed"]}
            rows.append(row)
            log(f"  (b) q{i + 1}: fallback's first token {row['beyond_deadline']:.3f} s after the deadline "
                f"(switch {_ms(row['switch']):.0f} ms, its TTFT {row['fallback_ttft']:.3f} s, direct {row['direct_ttft']:.3f} s)")
        served = srv.httpd.requests
    await _close_foundry()
    return {"questions": len(rows), "deadline_s": deadline, "requests_to_slow_service": served,
            "beyond_deadline_s": round(_med(r["beyond_deadline"] for r in rows), 3),
            "beyond_deadline_max_s": round(max(r["beyond_deadline"] for r in rows), 3),
            "switch_ms": _ms(_med(r["switch"] for r in rows)),
            "fallback_ttft_s": round(_med(r["fallback_ttft"] for r in rows), 3),
            "direct_ttft_s": round(_med(r["direct_ttft"] for r in rows), 3),
            "routed": rows[0]["routed"]}


async def service_down(qs, direct, auto, lib, requests, log) -> dict:
    await _point_foundry(f"http://127.0.0.1:{free_port()}/v1", requests)
    rows = []
    for i, q in enumerate(qs):
        order = [("direct", direct), ("auto", auto)] if i % 2 == 0 else [("auto", auto), ("direct", direct)]
        got = {name: await timed(q, opts, lib, requests) for name, opts in order}
        a, d = got["auto"], got["direct"]
        row = {"auto_first": a["first"] - a["t0"], "direct_first": d["first"] - d["t0"],
               "auto_pre": a["onnx_request"] - a["ready"], "direct_pre": d["onnx_request"] - d["ready"],
               "routed": a["routed"]}
        rows.append(row)
        log(f"  (c) q{i + 1}: first token {row['auto_first']:.3f} s routed vs {row['direct_first']:.3f} s direct "
            f"(passages -> request {_ms(row['auto_pre']):.0f} vs {_ms(row['direct_pre']):.0f} ms)")
    await _close_foundry()
    return {"questions": len(rows),
            "auto_first_token_s": round(_med(r["auto_first"] for r in rows), 3),
            "direct_first_token_s": round(_med(r["direct_first"] for r in rows), 3),
            "first_token_diff_s": round(_med(r["auto_first"] - r["direct_first"] for r in rows), 3),
            "pre_request_diff_ms": _ms(_med(r["auto_pre"] - r["direct_pre"] for r in rows)),
            "routed": rows[0]["routed"]}


async def _point_foundry(base_url: str, requests: Requests) -> None:
    from rag import pipeline as pl

    await _close_foundry()
    os.environ.update(FOUNDRY_BASE_URL=base_url, FOUNDRY_CONNECT_TIMEOUT="2.0")
    requests.watch("foundry", pl.engine("foundry"))  # the registry's instance for these settings


async def _close_foundry() -> None:
    """Close the 'foundry' engine made for the current settings (when there is one)."""
    from engines import registry
    from rag.config import settings

    await registry.close("foundry", settings().engine_config("foundry"))


def _rules(path: Path, text: str) -> None:
    path.write_text(text)
    os.environ["LRC_ROUTING"] = str(path)


async def run(args, lib, tmp: Path, log) -> dict:
    from engines import registry
    from rag import pipeline as pl

    direct = pl.Options(engine="onnx", model="smollm2", top_k=args.k, temperature=0.0,
                        max_new_tokens=args.max_tokens, style="quote+answer")
    auto = pl.Options(engine=pl.AUTO, model="", top_k=args.k, temperature=0.0,
                      max_new_tokens=args.max_tokens, style="quote+answer")
    requests = Requests()
    requests.watch("onnx", pl.engine("onnx"))
    qs = QUESTIONS[:args.questions]
    try:
        _rules(tmp / "one-target.toml", ONE_TARGET)
        for opts in (direct, auto):  # warm-up: model load, rules module, embedder
            await timed(qs[0], opts, lib, requests)
        log("(a) the router's overhead")
        a = await overhead(qs, direct, auto, lib, requests, args.rounds, log)
        _rules(tmp / "slow-first.toml", FAULT_FIRST.format(deadline=args.deadline))
        log("(b) a slow first token")
        b = await slow_first_token(qs[:args.fault_questions], direct, auto, lib, requests, args.deadline, log)
        log("(c) the service down")
        c = await service_down(qs[:args.fault_questions], direct, auto, lib, requests, log)
    finally:
        await registry.close_all()
    return {"overhead": a, "slow_first_token": b, "service_down": c}


def table(r: dict) -> str:
    a, b, c = r["overhead"], r["slow_first_token"], r["service_down"]
    return "\n".join([
        "| measure | routed (`auto`) | direct (`onnx:smollm2`) | difference (median of per-question differences) | target |",
        "|---|---:|---:|---:|---|",
        f"| (a) question -> first token, one target | {a['auto_first_token_ms']:.0f} ms | {a['direct_first_token_ms']:.0f} ms "
        f"| **{a['first_token_diff_ms']:+.1f} ms** | <= 5 ms |",
        f"| (a) question -> answer done | | | {a['total_diff_ms']:+.1f} ms | |",
        f"| (a) passages ready -> first token | | | {a['ready_to_first_token_diff_ms']:+.1f} ms | <= 5 ms |",
        f"| (a) passages ready -> engine request (the router's own work) | {a['auto_pre_request_ms']:.1f} ms "
        f"| {a['direct_pre_request_ms']:.1f} ms | **{a['pre_request_diff_ms']:+.1f} ms** | <= 5 ms |",
        f"| (a) engine request -> first token | | | {a['request_to_first_token_diff_ms']:+.1f} ms | |",
        f"| (b) slow service: its request -> fallback's first token, minus the {b['deadline_s']:g} s deadline "
        f"| **{b['beyond_deadline_s']:.2f} s** (max {b['beyond_deadline_max_s']:.2f} s) | | | <= 1 s |",
        f"| (b) deadline -> fallback's request | {b['switch_ms']:.0f} ms | | | |",
        f"| (b) request -> first token of onnx:smollm2 | {b['fallback_ttft_s']:.2f} s (as fallback) "
        f"| {b['direct_ttft_s']:.2f} s | | |",
        f"| (c) service down: question -> first token | {c['auto_first_token_s']:.2f} s | {c['direct_first_token_s']:.2f} s "
        f"| **{c['first_token_diff_s'] * 1000:+.0f} ms** | |",
        f"| (c) passages ready -> onnx request | | | {c['pre_request_diff_ms']:+.0f} ms | |",
    ])


def reading(r: dict) -> str:
    """What the figures say, in sentences (written from the figures, so a re-run keeps it true)."""
    from engines.foundry.engine import CONNECT_ATTEMPTS, CONNECT_BACKOFF

    a, b, c = r["overhead"], r["slow_first_token"], r["service_down"]
    own = a["pre_request_diff_ms"]
    lo, hi = a["ready_to_first_token_diff_iqr_ms"]
    qlo, qhi = a["first_token_diff_iqr_ms"]
    waits = " + ".join(f"{CONNECT_BACKOFF * 2 ** i:g} s" for i in range(CONNECT_ATTEMPTS - 1))
    return "\n".join([
        f"- **(a) Router overhead: {own:+.1f} ms per answer** (median of {a['answers_per_side']} pairs) for the "
        f"router's own work between the passages and the engine's request (reading and checking the rules file, "
        f"every answer; ordering the targets; resolving the model): target <= 5 ms "
        f"**{'met' if own <= 5 else 'missed'}**. Measured from the passages to the first token the difference is "
        f"{a['ready_to_first_token_diff_ms']:+.1f} ms (middle half of the pairs {lo:+.0f} to {hi:+.0f} ms; "
        f"{'not more' if a['ready_to_first_token_diff_ms'] <= 5 else 'more'} than 5 ms over direct), and from the question "
        f"{a['first_token_diff_ms']:+.1f} ms (middle half {qlo:+.0f} to {qhi:+.0f} ms: retrieval, the same code on "
        f"both sides, adds its own noise). Both sides wrote the same tokens in {a['same_answer']} of "
        f"{a['answers_per_side']} answers.",
        f"- **(b) Slow first token: the fallback's first token came {b['beyond_deadline_s']:.2f} s after the "
        f"deadline** (median; max {b['beyond_deadline_max_s']:.2f} s). Target <= 1 s: "
        f"**{'met' if b['beyond_deadline_s'] <= 1 else 'missed'}**. The fallback's request went out "
        f"{-b['switch_ms'] / 1000:.2f} s before the deadline (rag.answering.PRESTART_S: the next target starts "
        f"reading its prompt before the current one's deadline, and is cancelled if that one speaks in time), so by "
        f"the deadline its first token ({b['fallback_ttft_s']:.2f} s after its request; the same engine answering "
        f"directly: {b['direct_ttft_s']:.2f} s) was ready or nearly so. Without the early start the wait past the "
        f"deadline was that model's whole time to first token (1.38 s in the run before this change)."
        if b["switch_ms"] < 0 else
        f"**{'met' if b['beyond_deadline_s'] <= 1 else 'missed'}**. Of that, the switch (deadline -> the fallback's "
        f"request) takes {b['switch_ms']:.0f} ms; the rest is the fallback model's own time to first token "
        f"({b['fallback_ttft_s']:.2f} s; the same engine answering directly: {b['direct_ttft_s']:.2f} s).",
        f"- **(c) Service down: +{c['pre_request_diff_ms']:.0f} ms before the fallback's request** (first token "
        f"{c['auto_first_token_s']:.2f} s vs {c['direct_first_token_s']:.2f} s direct). That is the Foundry "
        f"engine's connection retries: {CONNECT_ATTEMPTS} attempts with {waits} back-off "
        f"(engines/foundry/engine.py CONNECT_ATTEMPTS, CONNECT_BACKOFF), paid on every routed answer while the "
        f"service stays down.",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="The auto engine's overhead and fallback times, next to the direct engine.")
    p.add_argument("--questions", type=int, default=10, help="questions for (a) (at most 10; default 10)")
    p.add_argument("--fault-questions", type=int, default=5, help="questions for (b) and (c) (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="(a): passes over the questions, order swapped (default 3)")
    p.add_argument("--deadline", type=float, default=2.0, help="(b): first_token_deadline_s of the slow target")
    p.add_argument("-k", type=int, default=2, help="passages per question (default 2)")
    p.add_argument("--max-tokens", type=int, default=16, help="answer tokens (default 16)")
    p.add_argument("--index-dir", help="index of docs_corpus/ kept / reused here (default: a temporary folder)")
    p.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    from rag.config import settings
    from rag.library import Library

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-route-") as tmp:
        lib = Library(Path(args.index_dir or Path(tmp) / "index"))
        print(f"ingest: {lib.ingest([settings().docs_corpus]).summary()}", flush=True)
        lib.search("warm up", 1)
        result = asyncio.run(run(args, lib, Path(tmp), lambda m: print(m, flush=True)))
    seconds = time.perf_counter() - t0
    tab = table(result)
    print()
    print(tab)
    print(reading(result))
    summary = {"bench": "route", "k": args.k, "max_new_tokens": args.max_tokens, "cpus": os.cpu_count(),
               "seconds": round(seconds, 1), **result}
    a, b, c = result["overhead"], result["slow_first_token"], result["service_down"]
    lines = [
        "**Question:** what does the \"auto\" engine (routing rules, `rag/routing`) cost next to choosing the "
        "engine directly, and how soon does the fallback answer when the first target is slow or down?",
        f"**Command:** `{benchlib.command_line('route', argv)}` (bench/bench_route.py; its docstring says "
        "what each figure is).",
        "",
        f"Run {benchlib.today()} ({round(seconds)} s in all), {benchlib.machine_note()}. A library of "
        f"`docs_corpus/` (user guide + FAQ), questions about it through `rag.pipeline.answer`, greedy, top {args.k}, "
        f"{args.max_tokens} answer tokens. (a): rules with one target (onnx:smollm2) versus Options(engine=\"onnx\", "
        f"model=\"smollm2\"), alternating per question, {a['answers_per_side']} answers each ({args.rounds} rounds of "
        f"{args.questions} questions); identical answers in {a['same_answer']} of {a['answers_per_side']}. "
        f"(b): rules [foundry target on a real local HTTP server that accepts the request, sends the headers "
        f"and then nothing, `first_token_deadline_s = {args.deadline:g}`; onnx:smollm2], {b['questions']} questions "
        f"(each after a direct answer or before one, alternately). (c): the same rules with the foundry target on "
        f"a free port where nothing listens, {c['questions']} questions.",
        "",
        tab,
        "",
        reading(result),
        "",
        f"Routed line of (b): \"{b['routed']}\"; of (c): \"{c['routed']}\".",
    ]
    return benchlib.report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
