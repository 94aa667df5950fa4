"""The OpenAI-compatible API's cost (issue 13), measured side by side with the pipeline in one run.

    python -m rag bench api [--questions 10] [--max-new-tokens 64] [--clients 4] [-k 2] [--write-benchmarks]

A library is indexed from docs_corpus/ (user guide + FAQ) into a temporary data folder, and
``python -m rag serve`` is started over it on a free 127.0.0.1 port (its own process: LRC_ENGINE=onnx,
LRC_MODEL=smollm2, LRC_TOP_K=k, no API key, a dead Foundry URL so that listing models never waits on
one), ready when GET /v1/models answers. Both paths answer one question first (warm-up: model
loaded, HTTP connection open). Greedy (temperature 0), the same token limit and top k on both sides.

(a) One client. For each question, strictly one after the other (never overlapping: the server's
    model worker and this process's are both loaded, only one ever generates), in alternating order:
    - API: ``POST /v1/chat/completions`` with ``stream: true`` and ``stream_options.include_usage``,
      model ``rag:smollm2``, over one kept-alive httpx connection (as an OpenAI client does). Timed
      from sending the request: the first SSE chunk with text (the quote: the server starts the
      response at the model's first token, so the quote and that token leave together), the first
      chunk of the model's own text (the chunk after the quote's), ``data: [DONE]``; completion
      tokens from the usage chunk.
    - Direct: ``rag.pipeline.answer(question, [], Options(engine="onnx", model="smollm2", ...))`` in
      this process: the first ``Token`` event, the end of the event stream; completion tokens from
      ``Done.usage``. The events are rendered as the API renders them (rag.api.render.Transcript), so
      the two texts can be compared: "identical" means the client received exactly that text.
    TTFT added by the API = median over questions of (API first model chunk - direct first Token).
    Throughput = completion tokens / (total - time to first token), each side; the ratio is the
    median of the per-question ratios (API / direct). That includes what follows the last token
    (answer check, sources), so "decode only" is also given: (tokens - 1) / (first -> last model
    token); the API's last-token chunk is found by position (each non-empty piece of text is one SSE
    chunk), only when both texts are identical.
(b) ``--clients`` streamed clients at once (asyncio + httpx, the same server, questions in turn):
    each one's status, ``[DONE]``, TTFT, total, tokens; the aggregate rate = all their completion
    tokens / (first request sent -> last [DONE]), next to one client's rate end to end (part (a)'s
    API answers: completion tokens / request -> [DONE], summed). Concurrent answers are queued fairly
    per engine slot (rag.scheduler: LRC_ONNX_SLOTS generate at once, the rest wait their turn), so the
    answers should equal part (a)'s.

Prints a table and findings and, last, a JSON summary; ``--write-benchmarks`` writes the section
"The OpenAI-compatible API (issue 13)" of docs/BENCHMARKS.md. The server is stopped at the end,
also on an error or Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

SECTION = "The OpenAI-compatible API (issue 13)"
MODEL_ID = "rag:smollm2"
TTFT_TARGET_MS = 50.0
THROUGHPUT_TARGET = 0.95
QUESTIONS = [
    "How do I add documents to the library?",
    "Which file types can I index?",
    "How do I remove a document from the library?",
    "What does the temperature setting do?",
    "How do I connect the app to a Foundry Local endpoint?",
    "How do I use Phi-4-mini with the in-process engine?",
    "How does the app make an answer from my documents?",
    "Which environment variable sets the folder where the index is kept?",
    "What should I do when a scanned PDF was not indexed?",
    "How do I start the app?",
]


# ------------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m rag serve`` over ``data`` in a child process (its own process group)."""

    def __init__(self, data: Path, k: int, log_path: Path):
        from rag.config import offline_env

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        env = offline_env({k_: v for k_, v in os.environ.items() if k_ != "LRC_API_KEY"})
        env.update({"LRC_DATA_DIR": str(data), "LRC_ENGINE": "onnx", "LRC_MODEL": "smollm2", "LRC_TOP_K": str(k),
                    "FOUNDRY_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "PYTHONUNBUFFERED": "1"})
        self.t0 = time.perf_counter()
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(self.port),
                                          "--log-level", "warning"], cwd=REPO_ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.ready_seconds = 0.0

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the API server exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=5).status_code == 200:
                    self.ready_seconds = time.perf_counter() - self.t0
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API server did not answer within {timeout:.0f} s:\n{self.output()}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:  # its model worker too, if it outlived the server
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)


# ------------------------------------------------------------------------------------ one answer each way
async def via_api(client, url: str, question: str, max_new_tokens: int) -> dict:
    """One streamed answer through the API, timed from sending the request (perf_counter seconds)."""
    from rag.api.render import QUOTE_HEAD

    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": question}], "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_new_tokens}
    rec = {"t0": time.perf_counter(), "status": None, "done": None, "chunks": [], "usage": None, "error": None}
    async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
        rec["status"] = r.status_code
        if r.status_code != 200:
            rec["error"] = (await r.aread()).decode(errors="replace")[:500]
        else:
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                data = line[6:]
                if data.strip() == "[DONE]":
                    rec["done"] = now
                    continue
                obj = json.loads(data)
                if "error" in obj:
                    rec["error"] = obj["error"]
                if obj.get("usage"):
                    rec["usage"] = obj["usage"]
                for choice in obj.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        rec["chunks"].append((now, text))
    rec["end"] = time.perf_counter()
    chunks = rec["chunks"]
    rec["text"] = "".join(t for _, t in chunks)
    rec["tokens"] = (rec["usage"] or {}).get("completion_tokens", 0)
    if chunks:
        rec["first_content"] = chunks[0][0] - rec["t0"]
        quote = next((i for i, (_, t) in enumerate(chunks) if t.lstrip("\n").startswith(QUOTE_HEAD)), None)
        model_at = 0 if quote is None else quote + 1
        rec["first"] = chunks[model_at][0] - rec["t0"] if model_at < len(chunks) else None
    else:
        rec["first_content"] = rec["first"] = None
    rec["total"] = (rec["done"] or rec["end"]) - rec["t0"]
    return rec


async def direct(question: str, opts, lib) -> dict:
    """The same answer through rag.pipeline.answer in this process, rendered as the API renders it."""
    from rag import pipeline as pl
    from rag.api.render import Transcript

    transcript = Transcript(streaming=True)
    pieces = []
    t0 = time.perf_counter()
    rec = {"t0": t0, "first": None, "last": None, "quote": None, "tokens": 0, "engine_tps": 0.0, "error": None,
           "token_pieces": []}
    async for ev in pl.answer(question, [], opts, lib=lib):
        now = time.perf_counter()
        if isinstance(ev, pl.Quoted) and rec["quote"] is None:
            rec["quote"] = now - t0
        elif isinstance(ev, pl.Token):
            rec["first"] = now - t0 if rec["first"] is None else rec["first"]
            rec["last"] = now - t0
        elif isinstance(ev, pl.Done):
            rec["tokens"] = ev.usage.completion_tokens
            rec["engine_tps"] = ev.usage.tokens_per_second
        elif isinstance(ev, pl.Failed):
            rec["error"] = ev.text
        piece = transcript.feed(ev)
        if piece:
            if isinstance(ev, pl.Token):
                rec["token_pieces"].append(len(pieces))
            pieces.append(piece)
    rec["total"] = time.perf_counter() - t0
    rec["text"] = "".join(pieces)
    rec["pieces"] = len(pieces)
    return rec


def api_last_token(a: dict, d: dict) -> float | None:
    """When the API sent the model's last token: each non-empty piece of the answer's text is one SSE
    chunk, so with the same text in as many chunks, the direct side's last Token piece says which."""
    if a["text"] != d["text"] or len(a["chunks"]) != d["pieces"] or not d["token_pieces"]:
        return None
    return a["chunks"][d["token_pieces"][-1]][0] - a["t0"]


def _decode_rate(tokens: int, first: float | None, last: float | None) -> float | None:
    """The engine's definition: tokens after the first over the time after the first."""
    if first is None or last is None or last <= first or tokens < 2:
        return None
    return (tokens - 1) / (last - first)


def _check(q: str, side: str, rec: dict) -> None:
    if rec.get("status") not in (None, 200) or rec["error"] or rec["first"] is None:
        raise SystemExit(f"{q!r} ({side}): no model answer: status {rec.get('status')}, error {rec['error']}, "
                         f"text {rec.get('text', '')[:200]!r}")


def _rate(rec: dict) -> float:
    secs = rec["total"] - rec["first"]
    return rec["tokens"] / secs if secs > 0 else 0.0


def _ms(x: float) -> float:
    return round(x * 1000, 1)


def _med(xs) -> float:
    return statistics.median(list(xs))


def _med_or_none(xs, digits: int = 2) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), digits) if xs else None


def _iqr_ms(xs: list[float]) -> list[float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return [_ms(q[0]), _ms(q[2])]


# ------------------------------------------------------------------------------------ the two parts
async def one_client(qs, client, url, opts, lib, max_new_tokens: int, log) -> tuple[dict, dict]:
    rows, texts = [], {}
    for i, q in enumerate(qs):
        order = ["api", "direct"] if i % 2 == 0 else ["direct", "api"]
        got = {}
        for side in order:  # strictly one after the other
            got[side] = await via_api(client, url, q, max_new_tokens) if side == "api" else await direct(q, opts, lib)
            _check(q, side, got[side])
        a, d = got["api"], got["direct"]
        texts[q] = a["text"]
        row = {"api_first_content": a["first_content"], "api_first": a["first"], "api_total": a["total"],
               "api_tokens": a["tokens"], "api_rate": _rate(a),
               "direct_quote": d["quote"], "direct_first": d["first"], "direct_total": d["total"],
               "direct_tokens": d["tokens"], "direct_rate": _rate(d), "direct_engine_tps": d["engine_tps"],
               "same": a["text"] == d["text"], "same_tokens": a["tokens"] == d["tokens"]}
        row["ratio"] = row["api_rate"] / row["direct_rate"] if row["direct_rate"] else 0.0
        row["api_decode"] = _decode_rate(a["tokens"], a["first"], api_last_token(a, d))
        row["direct_decode"] = _decode_rate(d["tokens"], d["first"], d["last"])
        row["decode_ratio"] = (row["api_decode"] / row["direct_decode"]
                               if row["api_decode"] and row["direct_decode"] else None)
        rows.append(row)
        log(f"  q{i + 1} ({'API first' if i % 2 == 0 else 'direct first'}): first token API {_ms(a['first']):.0f} ms "
            f"(first chunk {_ms(a['first_content']):.0f} ms) vs direct {_ms(d['first']):.0f} ms "
            f"({_ms(a['first'] - d['first']):+.1f} ms); {a['tokens']}/{d['tokens']} tokens, "
            f"{row['api_rate']:.1f} vs {row['direct_rate']:.1f} tok/s; identical {row['same']}")
    n = len(rows)
    added = [r["api_first"] - r["direct_first"] for r in rows]
    api_tokens, api_secs = sum(r["api_tokens"] for r in rows), sum(r["api_total"] for r in rows)
    result = {
        "questions": n, "identical": sum(r["same"] for r in rows), "same_token_count": sum(r["same_tokens"] for r in rows),
        "ttft_added_ms": _ms(_med(added)), "ttft_added_iqr_ms": _iqr_ms(added),
        "api_first_content_ms": _ms(_med(r["api_first_content"] for r in rows)),
        "api_first_token_ms": _ms(_med(r["api_first"] for r in rows)),
        "api_quote_to_token_gap_ms": _ms(_med(r["api_first"] - r["api_first_content"] for r in rows)),
        "direct_quote_ms": _ms(_med(r["direct_quote"] for r in rows if r["direct_quote"] is not None))
        if any(r["direct_quote"] is not None for r in rows) else None,
        "direct_first_token_ms": _ms(_med(r["direct_first"] for r in rows)),
        "api_total_ms": _ms(_med(r["api_total"] for r in rows)),
        "direct_total_ms": _ms(_med(r["direct_total"] for r in rows)),
        "total_added_ms": _ms(_med(r["api_total"] - r["direct_total"] for r in rows)),
        "api_tokens_per_s": round(_med(r["api_rate"] for r in rows), 2),
        "direct_tokens_per_s": round(_med(r["direct_rate"] for r in rows), 2),
        "direct_engine_tokens_per_s": round(_med(r["direct_engine_tps"] for r in rows), 2),
        "throughput_ratio": round(_med(r["ratio"] for r in rows), 3),
        "api_decode_tokens_per_s": _med_or_none(r["api_decode"] for r in rows),
        "direct_decode_tokens_per_s": _med_or_none(r["direct_decode"] for r in rows),
        "decode_ratio": _med_or_none((r["decode_ratio"] for r in rows), 3),
        "decode_pairs": sum(r["decode_ratio"] is not None for r in rows),
        "completion_tokens": round(_med(r["api_tokens"] for r in rows)),
        "api_end_to_end_tokens_per_s": round(api_tokens / api_secs, 2) if api_secs else 0.0,
    }
    return result, texts


async def concurrent(qs, client, url, max_new_tokens: int, clients: int, texts: dict, one_rate: float, log) -> dict:
    asked = [qs[j % len(qs)] for j in range(clients)]

    async def one(q):
        try:
            return await via_api(client, url, q, max_new_tokens)
        except Exception as exc:  # a client that failed is counted, not fatal
            return {"status": None, "done": None, "error": repr(exc), "first": None, "total": None, "tokens": 0,
                    "text": "", "t0": None, "end": time.perf_counter()}

    start = time.perf_counter()
    recs = await asyncio.gather(*(one(q) for q in asked))
    end = max(r["done"] or r["end"] for r in recs)
    for j, (q, r) in enumerate(zip(asked, recs)):
        first = "-" if r["first"] is None else f"{r['first']:.2f} s"
        total = "-" if r["total"] is None else f"{r['total']:.2f} s"
        error = f", error {r['error']}" if r["error"] else ""
        log(f"  client {j + 1}: status {r['status']}, [DONE] {r['done'] is not None}, first token {first}, "
            f"total {total}, {r['tokens']} tokens{error}")
    ok = [r for r in recs if r["status"] == 200 and r["done"] is not None and not r["error"]]
    tokens = sum(r["tokens"] for r in recs)
    wall = end - start
    rate = tokens / wall if wall > 0 else 0.0
    firsts = [r["first"] for r in ok if r["first"] is not None]
    totals = [r["total"] for r in ok]
    return {"clients": clients, "status_200": sum(r["status"] == 200 for r in recs),
            "done": sum(r["done"] is not None for r in recs), "completed": len(ok),
            "errors": [str(r["error"]) for r in recs if r["error"]],
            "first_token_s": [round(x, 3) for x in firsts], "total_s": [round(x, 3) for x in totals],
            "first_token_median_s": round(_med(firsts), 3) if firsts else None,
            "first_token_max_s": round(max(firsts), 3) if firsts else None,
            "total_median_s": round(_med(totals), 3) if totals else None,
            "total_max_s": round(max(totals), 3) if totals else None,
            "completion_tokens": tokens, "wall_s": round(wall, 3),
            "aggregate_tokens_per_s": round(rate, 2), "one_client_tokens_per_s": one_rate,
            "aggregate_vs_one": round(rate / one_rate, 2) if one_rate else None,
            "same_as_sequential": sum(r["text"] == texts.get(q) for q, r in zip(asked, recs))}


async def run(args, lib, server: Server, log) -> dict:
    import httpx

    from engines import registry
    from rag import pipeline as pl

    opts = pl.Options(engine="onnx", model="smollm2", top_k=args.k, temperature=0.0,
                      max_new_tokens=args.max_new_tokens)
    qs = QUESTIONS[:args.questions]
    limits = httpx.Limits(max_connections=max(args.clients, 1) + 2, max_keepalive_connections=max(args.clients, 1) + 2)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0), limits=limits) as client:
            warm_api = await via_api(client, server.url, qs[0], args.max_new_tokens)
            _check(qs[0], "api warm-up", warm_api)
            log(f"warm-up: API answered in {warm_api['total']:.1f} s")
            warm_direct = await direct(qs[0], opts, lib)
            _check(qs[0], "direct warm-up", warm_direct)
            log(f"warm-up: direct answered in {warm_direct['total']:.1f} s (model loaded in this process)")
            log(f"(a) one client: API vs direct, {len(qs)} questions, alternating")
            a, texts = await one_client(qs, client, server.url, opts, lib, args.max_new_tokens, log)
            log(f"(b) {args.clients} streamed clients at once")
            b = await concurrent(qs, client, server.url, args.max_new_tokens, args.clients, texts,
                                 a["api_end_to_end_tokens_per_s"], log)
    finally:
        await registry.close_all()
    return {"one_client": a, "concurrent": b}


# ------------------------------------------------------------------------------------ report
def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def table(r: dict) -> str:
    a, b = r["one_client"], r["concurrent"]
    lo, hi = a["ttft_added_iqr_ms"]
    rows = [
        "| measure | API (streamed, `/v1/chat/completions`) | direct (`pipeline.answer`) | API - direct / ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| question -> first token of the model's answer (median) | {a['api_first_token_ms']:.0f} ms "
        f"| {a['direct_first_token_ms']:.0f} ms | **{a['ttft_added_ms']:+.1f} ms** (middle half {lo:+.0f} to {hi:+.0f}) "
        f"| <= {TTFT_TARGET_MS:.0f} ms: {_met(a['ttft_added_ms'] <= TTFT_TARGET_MS)} |",
        f"| question -> first text chunk (API: the quote) / the Quoted event (direct) | {a['api_first_content_ms']:.0f} ms "
        f"| {a['direct_quote_ms'] if a['direct_quote_ms'] is not None else float('nan'):.0f} ms | | |",
        f"| question -> end ([DONE] / end of the events) | {a['api_total_ms']:.0f} ms | {a['direct_total_ms']:.0f} ms "
        f"| {a['total_added_ms']:+.1f} ms | |",
        f"| throughput: completion tokens / (total - first token) | {a['api_tokens_per_s']:.1f} tok/s "
        f"| {a['direct_tokens_per_s']:.1f} tok/s | **{a['throughput_ratio']:.3f}** "
        f"| >= {THROUGHPUT_TARGET}: {_met(a['throughput_ratio'] >= THROUGHPUT_TARGET)} |",
        f"| decode only: (tokens - 1) / (first -> last model token), {a['decode_pairs']} pairs "
        f"| {_fmt_rate(a['api_decode_tokens_per_s'])} | {_fmt_rate(a['direct_decode_tokens_per_s'])} "
        f"| {'-' if a['decode_ratio'] is None else format(a['decode_ratio'], '.3f')} | |",
        f"| identical text (API stream vs direct events rendered) | | | {a['identical']} of {a['questions']} | all |",
        f"| {b['clients']} clients at once: status 200 / [DONE] | {b['status_200']} / {b['done']} of {b['clients']} | | "
        f"| all: {_met(b['completed'] == b['clients'])} |",
        f"| {b['clients']} clients at once: first token (median / max) "
        f"| {_fmt_s(b['first_token_median_s'])} / {_fmt_s(b['first_token_max_s'])} | | | |",
        f"| {b['clients']} clients at once: total (median / max) | {_fmt_s(b['total_median_s'])} / {_fmt_s(b['total_max_s'])} "
        f"| | | |",
        f"| tokens/s end to end: {b['clients']} clients at once vs one at a time | {b['aggregate_tokens_per_s']:.1f} "
        f"vs {b['one_client_tokens_per_s']:.1f} tok/s | | x{b['aggregate_vs_one'] or 0:.2f} | |",
    ]
    return "\n".join(rows)


def _fmt_rate(x) -> str:
    return "-" if x is None else f"{x:.1f} tok/s"


def _fmt_s(x) -> str:
    return "-" if x is None else f"{x:.2f} s"


def reading(r: dict) -> str:
    a, b = r["one_client"], r["concurrent"]
    return "\n".join([
        f"- **TTFT added by the API: {a['ttft_added_ms']:+.1f} ms** (median of {a['questions']} per-question "
        f"differences, API first model chunk minus direct first Token): target <= {TTFT_TARGET_MS:.0f} ms "
        f"**{_met(a['ttft_added_ms'] <= TTFT_TARGET_MS)}**. The server starts the HTTP response at the model's first "
        f"token, so the quote and that token arrive together (median gap between the two chunks "
        f"{a['api_quote_to_token_gap_ms']:.1f} ms): an API client sees the quote at {a['api_first_content_ms']:.0f} ms, "
        + (f"where the chat (direct events) has it at {a['direct_quote_ms']:.0f} ms, before the model's prompt is read."
           if a["direct_quote_ms"] is not None else "the direct path gave no quote."),
        f"- **Throughput API / direct: {a['throughput_ratio']:.3f}** (median of per-question ratios; "
        f"{a['api_tokens_per_s']:.1f} vs {a['direct_tokens_per_s']:.1f} tok/s after the first token, the engine's own "
        f"decode rate {a['direct_engine_tokens_per_s']:.1f} tok/s): target >= {THROUGHPUT_TARGET} "
        f"**{_met(a['throughput_ratio'] >= THROUGHPUT_TARGET)}**. Both include what follows the last token (answer "
        f"check, sources; the API also sends the usage chunk and [DONE]); counting only the model's tokens (first -> "
        f"last token) the ratio is "
        f"{'-' if a['decode_ratio'] is None else format(a['decode_ratio'], '.3f')} "
        f"({_fmt_rate(a['api_decode_tokens_per_s'])} vs {_fmt_rate(a['direct_decode_tokens_per_s'])}).",
        f"- **Identical answers: {a['identical']} of {a['questions']}** (greedy, same limit of tokens, same top k); "
        f"same completion-token count in {a['same_token_count']} of {a['questions']}.",
        f"- **{b['clients']} clients at once: {b['completed']} of {b['clients']} completed** (status 200: "
        f"{b['status_200']}, [DONE]: {b['done']}){'; errors: ' + '; '.join(b['errors']) if b['errors'] else ''}. "
        f"First tokens {', '.join(f'{x:.2f}' for x in b['first_token_s'])} s, totals "
        f"{', '.join(f'{x:.2f}' for x in b['total_s'])} s. Together {b['aggregate_tokens_per_s']:.1f} tok/s end to end "
        f"({b['completion_tokens']} tokens in {b['wall_s']:.2f} s) vs {b['one_client_tokens_per_s']:.1f} tok/s for one "
        f"client at a time (x{b['aggregate_vs_one'] or 0:.2f}): the answers wait in the engine's fair queue "
        f"(rag.scheduler: LRC_ONNX_SLOTS answers generate at once, the others are queued fairly per engine slot). "
        f"Same text as the one-at-a-time API answer: {b['same_as_sequential']} of {b['clients']}.",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="The OpenAI-compatible API's first-token time and throughput, "
                                            "next to the pipeline answering directly; then concurrent clients.")
    p.add_argument("--questions", type=int, default=10, help=f"questions (at most {len(QUESTIONS)}; default 10)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer tokens, both sides (default 64; floor 16)")
    p.add_argument("--clients", type=int, default=4, help="streamed clients at once in part (b) (default 4)")
    p.add_argument("-k", type=int, default=2, help="passages per question, both sides (default 2)")
    p.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    args.questions = max(1, min(args.questions, len(QUESTIONS)))
    args.max_new_tokens = max(16, args.max_new_tokens)
    from rag.config import settings
    from rag.library import Library

    def on_term(*_):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    t0 = time.perf_counter()
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            data = Path(tmp) / "data"
            lib = Library(data / "index")
            print(f"ingest: {lib.ingest([settings().docs_corpus]).summary()}", flush=True)
            lib.search("warm up", 1)
            server = Server(data, args.k, Path(tmp) / "server.log")
            server.wait_ready()
            print(f"server: {server.url} answered GET /models {server.ready_seconds:.1f} s after it was started",
                  flush=True)
            try:
                result = asyncio.run(run(args, lib, server, lambda m: print(m, flush=True)))
            except BaseException:
                tail = server.output().strip()
                if tail:
                    print(f"--- server log (end) ---\n{tail}", file=sys.stderr)
                raise
            finally:
                server.stop()
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, old_term)
    seconds = time.perf_counter() - t0
    tab = table(result)
    print()
    print(tab)
    print()
    print(reading(result))
    a, b = result["one_client"], result["concurrent"]
    summary = {"bench": "api", "k": args.k, "max_new_tokens": args.max_new_tokens, "cpus": os.cpu_count(),
               "load_avg": [round(x, 2) for x in os.getloadavg()], "seconds": round(seconds, 1),
               "targets": {"ttft_added_ms<=50": a["ttft_added_ms"] <= TTFT_TARGET_MS,
                           "throughput_ratio>=0.95": a["throughput_ratio"] >= THROUGHPUT_TARGET,
                           "all_clients_completed": b["completed"] == b["clients"]},
               **result}
    lines = [
        "**Question:** what does answering through the OpenAI-compatible API (`python -m rag serve`, "
        "`POST /v1/chat/completions`, streamed) cost next to the pipeline answering in-process, and do "
        "several streamed clients at once all complete?",
        f"**Command:** `{benchlib.command_line('api', argv)}` (bench/bench_api.py; its docstring says what "
        "each figure is).",
        "",
        f"Run {benchlib.today()} ({round(seconds)} s in all), {benchlib.machine_note()}. A library of "
        f"`docs_corpus/` (user guide + FAQ); the server in its own process over it (onnx, smollm2, no API key); "
        f"{a['questions']} questions about the documents, greedy, top {args.k}, at most {args.max_new_tokens} answer "
        f"tokens (median {a['completion_tokens']}), each answered once streamed through the API (httpx, one kept-alive "
        f"connection) and once by `rag.pipeline.answer` in the benchmark's process, one after the other, the order "
        f"alternating per question; then {b['clients']} streamed clients at once.",
        "",
        tab,
        "",
        reading(result),
    ]
    return benchlib.report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
