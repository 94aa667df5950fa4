"""Many streamed clients at once, chat and /v1 mixed, with the engine's fair queue (rag.scheduler) on and off
(issue 27).

    python -m rag bench load [--clients 1,8,24,64] [--off-clients 1,8,24] [--modes on,off,on:2] [--model smollm2]
                             [--max-new-tokens 128] [-k 2] [--greedy] [--write-benchmarks]
                             [--docs FILE...] [--questions FILE]

A library of docs_corpus/ (user guide + FAQ; --docs: other files) in a temporary data folder, everyone asking
one question (--questions: /v1 and the lone answers ask the file's first, each chat session the next one in
turn); for each of queue on (LRC_QUEUE=1, the default slots and limits; "on:N": N slots; "on@N": the engine's
process at niceness N; "+KEY=VALUE": a setting of that server) and off (LRC_QUEUE=0: every answer starts at once and the
engine time-slices them), a real chat server over it (``chainlit run app.py`` on 127.0.0.1: onnx, the model,
greedy, no login, /v1 on the same server; bench/load_clients.py). One warm-up answer, then a lone /v1
answer and a lone chat answer (the yardsticks), then for each client count N one burst, everything sent
at the same moment: N // 4 chat sessions over Socket.IO (python-socketio, each its own user, connected
before the burst), from 24 clients on one greedy /v1 user with 12 requests (beyond
LRC_MAX_WAITING_PER_USER = 10 waiting: 429s, retried after their Retry-After), the rest /v1 streams (httpx)
of one user each; all the same real question, the same token limit.

Per burst, times from the burst's start: first text (the quote; on /v1 it travels with the model's first
token unless the answer waited) and the model's first token (when the answer was served) p50/p95/max; the whole answer
p50/mean/max; the first served answer's first token and whole answer next to the lone /v1 answer's (the
targets: 1.2x); the worst k-th answer to end against k lone answers (target 1.1x); "place shown":
for the clients that waited only, from their own sending to their place (X-Queue-Position or an SSE
comment line on /v1, the "⏳ Nth in line" line in the chat), p50/p95/max (target 1 s); aggregate tokens/s
(/v1's usage; a chat answer counted as the lone answer's tokens when its text is the lone chat answer's);
answers complete and identical to the lone answer of their kind (greedy: a mixed-up stream shows); 429s
(and the chat's "busy", retried after its "Retry in N s"); fairness: served order (by first token), the
most answers of one user served in a row while another user waited, the chat answers' places in that
order (chat first: LRC_QUEUE_CHAT_FIRST), the chat's and /v1's whole answer p50.

``--greedy``: also one user sends ten requests at once and, a moment later, another user one: how long
that one waits, next to a lone answer (the target: at most one answer's time more).

Prints tables and, last, a JSON summary; ``--write-benchmarks`` writes the section "Many users at once
(issue 27)" of docs/BENCHMARKS.md. The servers are stopped at the end, also on an error or Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]  # the repo, bench/

import benchlib  # noqa: E402
from load_clients import QUESTION, ChatClient, ChatServer, api_one  # noqa: E402

SECTION = "Many users at once (issue 27)"
GREEDY_REQUESTS = 12
FOOTER = re.compile(r"\s*`[^`]*?(\d+) answer tokens`\s*$")


def _pct(xs: list, q: float) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def _three(xs: list) -> list:
    return [_pct(xs, 0.5), _pct(xs, 0.95), _pct(xs, 1.0)]


def _answer(rec: dict) -> str:
    """The text to compare: a chat answer without its footer (timings)."""
    return FOOTER.sub("", rec["text"]) if rec["kind"] == "chat" else rec["text"]


def fairness(ok: list[dict]) -> dict:
    """Served order (by first token): the most answers of one user in a row while another user had a request
    waiting (sent before and not served yet), and where the chat answers came."""
    order = sorted((r for r in ok if r["first"] is not None), key=lambda r: r["first"])
    most = run = 0
    for i, r in enumerate(order):
        run = run + 1 if i and order[i - 1]["user"] == r["user"] else 1
        others_wait = any(o["user"] != r["user"] and o["sent"] <= r["first"] for o in order[i + 1:])
        if others_wait:
            most = max(most, run)
    ranks = [i + 1 for i, r in enumerate(order) if r["kind"] == "chat"]
    return {"max_in_a_row": most, "chat_ranks": ranks, "served": len(order)}


def _tokens(rec: dict) -> int:
    """Answer tokens: /v1's usage, the chat's footer."""
    if rec["kind"] == "api":
        return rec["tokens"]
    m = FOOTER.search(rec["text"])
    return int(m.group(1)) if m else 0


def summarise(recs: list[dict], lone: dict) -> dict:
    ok = [r for r in recs if r["status"] == 200 and r["done"] is not None and not r["error"]]
    end = max((r["done"] for r in ok), default=None)
    texts = {"api": _answer(lone["api"]), "chat": _answer(lone["chat"])}
    tokens = sum(_tokens(r) for r in ok)
    # answers to the lone answer's question (a chat of --questions may ask another: compared with nothing)
    same = [r for r in ok if r.get("question", lone["chat"].get("question")) == lone["chat"].get("question")]
    waited = [r["place"] - r["sent"] for r in ok if r["place"] is not None]
    served = min(ok, key=lambda r: r["first"] if r["first"] is not None else 1e9) if ok else None
    by_done = sorted(r["done"] for r in ok)
    kth = max((d / (k * lone["api"]["done"]) for k, d in enumerate(by_done, 1)), default=None)
    kinds = {kind: [r for r in ok if r["kind"] == kind] for kind in ("chat", "api")}
    return {"clients": len(recs), "chat": sum(r["kind"] == "chat" for r in recs), "completed": len(ok),
            "identical": sum(_answer(r) == texts[r["kind"]] for r in same), "comparable": len(same),
            "chat_quotes": sorted(round(r["first_text"], 2) for r in kinds["chat"] if r["first_text"] is not None),
            "first_text": _three([r["first_text"] for r in ok]), "first": _three([r["first"] for r in ok]),
            "done": [_pct(by_done, 0.5), statistics.mean(by_done) if ok else None, end],
            "first_served_first": served["first"] if served else None, "first_served_done": served["done"] if served else None,
            "worst_kth_ratio": kth, "waited": len(waited), "place": _three(waited),
            "tokens_per_s": tokens / end if end else None,
            "refused": sum(r["refused"] for r in recs), "refused_clients": sum(r["refused"] > 0 for r in recs),
            "retry_waited": sum(r["retry_waited"] for r in recs),
            "done_p50_chat": _pct([r["done"] for r in kinds["chat"]], 0.5),
            "done_p50_api": _pct([r["done"] for r in kinds["api"]], 0.5), **fairness(ok)}


async def burst(url: str, model_id: str, n: int, max_new_tokens: int, lone: dict, questions: list[str]) -> dict:
    import httpx

    n_chat = n // 4 if n > 1 else 0
    n_greedy = GREEDY_REQUESTS if n >= 24 else 0
    users = [f"user{i}" for i in range(n - n_chat - n_greedy)] + ["greedy"] * n_greedy
    chats = [ChatClient(SimpleNamespace(url=url)) for _ in range(n_chat)]
    opening = asyncio.Semaphore(4)

    async def open_one(c: ChatClient) -> None:
        async with opening:
            await c.open()

    await asyncio.gather(*(open_one(c) for c in chats))
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    try:
        async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
            t0 = time.perf_counter()
            recs = await asyncio.gather(*(c.ask(t0, questions[i % len(questions)]) for i, c in enumerate(chats)),
                                        *(api_one(client, url, model_id, u, max_new_tokens, t0, questions[0])
                                          for u in users))
    finally:
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
    return {**summarise(list(recs), lone), "records": [{k: v for k, v in r.items() if k != "text"} for r in recs]}


async def greedy(url: str, model_id: str, max_new_tokens: int) -> dict:
    """Ten requests of one user, then one of another: the other's whole answer."""
    import httpx

    async with httpx.AsyncClient(timeout=3600, limits=httpx.Limits(max_connections=16)) as client:
        t0 = time.perf_counter()
        hog = [asyncio.create_task(api_one(client, url, model_id, "greedy", max_new_tokens, t0)) for _ in range(10)]
        await asyncio.sleep(0.5)
        other = await api_one(client, url, model_id, "other", max_new_tokens)
        hogs = await asyncio.gather(*hog)
    return {"other_done": other["done"], "other_status": other["status"],
            "greedy_completed": sum(r["done"] is not None for r in hogs), "greedy_429": sum(r["refused"] for r in hogs),
            "records": [{k: v for k, v in r.items() if k != "text"} for r in [*hogs, other]]}


async def measure(url: str, model_id: str, counts: list[int], max_new_tokens: int, with_greedy: bool, log,
                  questions: list[str] = (QUESTION,)) -> dict:
    import httpx

    questions = list(questions)
    async with httpx.AsyncClient(timeout=900) as client:
        await api_one(client, url, model_id, "warm", max_new_tokens, question=questions[0])  # the model loaded
        lone_api = await api_one(client, url, model_id, "lone", max_new_tokens, question=questions[0])
    chat = ChatClient(SimpleNamespace(url=url))
    await chat.open()
    try:
        t0 = time.perf_counter()
        lone_chat = await chat.ask(t0, questions[0])
    finally:
        await chat.close()
    lone = {"api": lone_api, "chat": lone_chat}
    log(f"  lone /v1 answer: first token {lone_api['first']:.2f} s, done {lone_api['done']:.2f} s, "
        f"{lone_api['tokens']} tokens; lone chat answer: quote {lone_chat['first_text']:.2f} s, first token "
        f"{lone_chat['first']:.2f} s, done {lone_chat['done']:.2f} s")
    out = {"lone": {kind: {k: r.get(k) for k in ("first_text", "first", "done", "tokens", "question")}
                    for kind, r in lone.items()},
           "bursts": []}
    for n in counts:
        r = await burst(url, model_id, n, max_new_tokens, lone, questions)
        log(f"  {n} clients: " + ", ".join(f"{k}={_r(v)}" for k, v in r.items() if k != "records"))
        out["bursts"].append(r)
    if with_greedy:
        out["greedy"] = await greedy(url, model_id, max_new_tokens)
        log(f"  greedy user: { {k: v for k, v in out['greedy'].items() if k != 'records'} }")
    return out


def _r(v):
    if isinstance(v, float):
        return round(v, 2)
    if isinstance(v, list):
        return [_r(x) for x in v]
    return v


def _brief(key: str, value):
    """A result without the clients' records (those go to --json only)."""
    if key == "bursts":
        return [{k: _r(v) for k, v in b.items() if k != "records"} for b in value]
    if key == "greedy":
        return {k: _r(v) for k, v in value.items() if k != "records"}
    return value


def _s(x) -> str:
    return "–" if x is None else f"{x:.1f} s"


def _ss(xs: list) -> str:
    return " / ".join(_s(x) for x in xs)


def tables(results: dict) -> str:
    rows = ["| queue | clients (chat) | first text p50 / p95 / max | first token p50 / p95 / max | whole answer "
            "p50 / mean / max | first served: token, done (x lone) | worst k-th done / (k x lone) | tokens/s | "
            "complete / identical |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        lone = r["lone"]["api"]
        for b in r["bursts"]:
            ratio = (f"{b['first_served_first'] / lone['first']:.2f}x, {b['first_served_done'] / lone['done']:.2f}x"
                     if b["first_served_first"] else "–")
            rows.append(f"| {mode} | {b['clients']} ({b['chat']}) | {_ss(b['first_text'])} | {_ss(b['first'])} "
                        f"| {_ss(b['done'])} | {_s(b['first_served_first'])}, {_s(b['first_served_done'])} ({ratio}) "
                        f"| {b['worst_kth_ratio'] or 0:.2f}x | {b['tokens_per_s'] or 0:.1f} "
                        f"| {b['completed']}/{b['clients']} / {b['identical']} |")
    rows += ["", "| queue | clients | waited | place shown (waiting clients, from sending) p50 / p95 / max | 429 + busy "
             "(clients; Retry-After waited) | most answers of one user in a row while others waited | chat answers' "
             "places in served order | whole answer p50: chat / /v1 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        for b in r["bursts"]:
            ranks = b["chat_ranks"]
            rank_text = f"{min(ranks)}–{max(ranks)} of {b['served']}" if ranks else "–"
            rows.append(f"| {mode} | {b['clients']} | {b['waited']} | {_ss(b['place'])} | {b['refused']} "
                        f"({b['refused_clients']}; {b['retry_waited']:.0f} s) | {b['max_in_a_row']} | {rank_text} "
                        f"| {_s(b['done_p50_chat'])} / {_s(b['done_p50_api'])} |")
    return "\n".join(rows)


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def _questions(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line)["question"] if line.startswith("{") else line for line in lines]


def _restore(values: dict[str, str | None]) -> None:
    """The environment's ``values`` back (None: unset)."""
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="Many streamed chat and /v1 clients at once, the fair queue on and off.")
    p.add_argument("--clients", default="1,8", help="client counts, comma-separated (default 1,8)")
    p.add_argument("--off-clients", default=None, help="client counts with the queue off (default: --clients)")
    p.add_argument("--model", default="smollm2", help="the in-process model (default smollm2; tiny: the random test model)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer tokens (default 128)")
    p.add_argument("-k", type=int, default=2, help="passages per question (default 2)")
    p.add_argument("--modes", default="on,off", help="queue on, off, on:N (N slots), on@N (the engine's process at niceness N), each with "
                        "+KEY=VALUE settings of its server (on+LRC_SENTENCE_CACHE=0), comma-separated (default on,off)")
    p.add_argument("--docs", nargs="+", default=None, help="files or folders the library indexes (default docs_corpus/)")
    p.add_argument("--questions", type=Path, default=None,
                   help="JSONL (a 'question' per line) or plain lines: /v1 clients and the lone answers ask the first, "
                        "the chat clients the next in turn (default: one question on docs_corpus/)")
    p.add_argument("--greedy", action="store_true", help="also: one user's ten requests against another's one")
    p.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=None, help="also write every result, each client's record too, to this file")
    args = p.parse_args(argv)
    counts = _counts(args.clients)
    off_counts = _counts(args.off_clients) if args.off_clients else counts
    from rag.config import settings
    from rag.library import Library

    t0, results = time.perf_counter(), {}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    questions = _questions(args.questions) if args.questions else [QUESTION]
    extra = {kv.partition("=")[0] for m in modes for kv in m.split("+")[1:]}
    saved = {k: os.environ.get(k) for k in ("LRC_QUEUE", "LRC_ONNX_SLOTS", "LRC_ENGINE_NICE", *extra)}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        data = Path(tmp) / "data"
        docs = args.docs or [str(settings().docs_corpus)]
        print(f"ingest: {Library(data / 'index').ingest(docs).summary()}", flush=True)
        for mode in modes:
            queue, *settings_ = mode.split("+")  # "on+LRC_SENTENCE_CACHE=0": a setting of this server
            _restore({k: saved[k] for k in extra})
            os.environ.update(kv.partition("=")[::2] for kv in settings_)
            os.environ["LRC_QUEUE"] = "0" if queue == "off" else "1"
            base, _, nice = queue.partition("@")  # "on@5": the engine's process at niceness 5
            os.environ["LRC_ENGINE_NICE"] = nice or "0"
            slots = base.partition(":")[2]  # "on:2": two answers at once
            if slots:
                os.environ["LRC_ONNX_SLOTS"] = slots
            else:
                os.environ.pop("LRC_ONNX_SLOTS", None)
            name = "".join(c if c.isalnum() else "-" for c in mode)
            server = ChatServer(Path(tmp) / f"app-{name}", data, args.model, args.k,
                                args.max_new_tokens, Path(tmp) / f"server-{name}.log")
            try:
                server.wait_ready()
                print(f"queue {mode}: server ready in {server.ready_seconds:.1f} s", flush=True)
                results[mode] = asyncio.run(measure(server.url, f"rag:{args.model}", off_counts if queue == "off" else counts,
                                                    args.max_new_tokens, args.greedy and mode == "on",
                                                    lambda m: print(m, flush=True), questions))
            finally:
                server.stop()
    _restore(saved)
    seconds = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    tab = tables(results)
    print()
    print(tab)
    cfg = settings()
    summary = {"bench": "load", "model": args.model, "k": args.k, "max_new_tokens": args.max_new_tokens,
               "slots": cfg.onnx_slots, "max_waiting": cfg.max_waiting, "max_waiting_per_user": cfg.max_waiting_per_user,
               "retrieval_at_once": cfg.retrieval_at_once, "cpus": os.cpu_count(), "load_avg": [round(x, 1) for x in os.getloadavg()],
               "seconds": round(seconds, 1),
               **{mode: {k: _brief(k, v) for k, v in r.items()} for mode, r in results.items()}}
    lone = results.get("on", next(iter(results.values()), {})).get("lone", {})
    lines = [
        "**Question:** with many people asking at once, in the chat and on /v1, does a fair queue in front of the "
        "engine (issue 27) answer the early askers sooner than letting every answer run at once, without costing "
        "throughput, fairly between users, with every waiting user shown their place?",
        f"**Command:** `{benchlib.command_line('load', argv)}` (bench/bench_load.py; its docstring says what each "
        "figure is).",
        "",
        f"Run {benchlib.today()} ({round(seconds)} s in all), {benchlib.machine_note()}. `docs_corpus/` library, "
        f"`chainlit run app.py` (onnx, {args.model}, top {args.k}, at most {args.max_new_tokens} answer tokens, greedy; "
        f"/v1 on the same server), queue on = LRC_ONNX_SLOTS={cfg.onnx_slots} (on:N: N), LRC_MAX_WAITING="
        f"{cfg.max_waiting}, LRC_MAX_WAITING_PER_USER={cfg.max_waiting_per_user}, LRC_RETRIEVAL_AT_ONCE="
        f"{cfg.retrieval_at_once}; everything sent at the same moment. Lone /v1 answer: first token "
        f"{_s(lone.get('api', {}).get('first'))}, done {_s(lone.get('api', {}).get('done'))}; lone chat answer: quote "
        f"{_s(lone.get('chat', {}).get('first_text'))}, done {_s(lone.get('chat', {}).get('done'))}.",
        "",
        tab,
    ]
    if "greedy" in results.get("on", {}):
        g = results["on"]["greedy"]
        lines += ["", f"Greedy user (queue on): ten requests from one user, then one from another: the other's "
                      f"whole answer in {_s(g['other_done'])} (a lone answer: {_s(lone['api']['done'])})."]
    return benchlib.report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
