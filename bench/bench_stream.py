"""Streaming to the page: what a streamed answer costs the browser, at each LRC_STREAM_INTERVAL_MS.

    python -m rag bench stream [--intervals 0,100] [--rounds 2] [--tokens 256] [--no-write]

Chainlit's page renders the whole message again for each piece the server streams (Markdown parsed
anew), so a long answer streamed token by token costs the browser more the longer it gets. For each
interval (0: every piece at once, the baseline; the default 100 ms), in turns, a real `chainlit run
app.py` (SmolLM2, LRC_MAX_NEW_TOKENS=--tokens) and a real chromium: one chat asks the same questions,
and for each answer the bench records chromium's CPU seconds (all its processes) and the server's from
the question to the footer, the Socket.IO frames the page received, and the seconds to its first text
and to its footer. The answers' final texts must be the same at every interval (greedy decoding).
Needs the browser and Playwright of the e2e tests (tests/browser_launch.py, `make chromium`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from bench_chat_startup import MESSAGES, browser_launch, start_server, stop_server, wait_http  # noqa: E402

QUESTIONS = ["How do I connect a Foundry Local endpoint?", "Does Local RAG Chat send my documents to the internet?",
             "How do I add documents to the library?"]
TITLE = "Streaming to the page"


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _chromium() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if "chrom" in (p.info["name"] or "")]


def _tree(proc) -> list[psutil.Process]:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def ask(page, frames: list[int], server, question: str) -> dict:
    n = page.locator(MESSAGES).count()
    c0, s0, f0 = _cpu(_chromium()), _cpu(_tree(server)), frames[0]
    t0 = time.monotonic()
    page.fill("#chat-input", question)
    page.click("#chat-submit")
    first = None
    while True:
        texts = page.locator(MESSAGES).all_text_contents()[n:]
        if first is None and any(t.strip() and not t.startswith("Retrieval") for t in texts):
            first = time.monotonic() - t0
        if any("tokens/s" in t for t in texts):
            break
        time.sleep(0.05)
    done = time.monotonic() - t0
    answer = next(t for t in texts if "tokens/s" in t)
    return {"browser_cpu": _spent(c0, _cpu(_chromium())), "server_cpu": _spent(s0, _cpu(_tree(server))),
            "frames": frames[0] - f0, "first_text": first, "answer": done,
            "text": answer.rsplit("In-process", 1)[0]}  # the footer's timings differ from run to run


def run_interval(ms: int, root: Path, data: Path, browser, tokens: int) -> list[dict]:
    proc, url, _ = start_server(root, data, {"LRC_STREAM_INTERVAL_MS": str(ms), "LRC_MAX_NEW_TOKENS": str(tokens)})
    try:
        wait_http(url + "/", proc)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        frames = [0]

        def on_ws(ws):
            ws.on("framereceived", lambda _: frames.__setitem__(0, frames[0] + 1))

        page.on("websocket", on_ws)
        page.goto(url + "/")
        page.get_by_text("Welcome to Local RAG Chat").wait_for()
        page.wait_for_timeout(3000)  # the welcome's first-start indexing line settles
        rows = [{"interval": ms, "question": q, **ask(page, frames, proc, q)} for q in QUESTIONS]
        ctx.close()
        return rows
    finally:
        stop_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intervals", default="0,100", help="LRC_STREAM_INTERVAL_MS values, comma-separated")
    ap.add_argument("--rounds", type=int, default=2, help="turns through the intervals (each a fresh server)")
    ap.add_argument("--tokens", type=int, default=256, help="LRC_MAX_NEW_TOKENS of the server")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md as it is")
    args = ap.parse_args()
    intervals = [int(x) for x in args.intervals.split(",")]
    from playwright.sync_api import sync_playwright

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lrc-bench-stream-") as tmp, sync_playwright() as pw:
        root = Path(tmp)
        browser = browser_launch.launch(pw)
        for r in range(args.rounds):
            for ms in intervals:
                got = run_interval(ms, root, root / "data", browser, args.tokens)
                for row in got:
                    print(f"round {r + 1} interval {ms} ms: browser {row['browser_cpu']:.2f} s CPU, server "
                          f"{row['server_cpu']:.2f} s, {row['frames']} frames, first text {row['first_text']:.2f} s, "
                          f"footer {row['answer']:.1f} s  ({row['question'][:40]})", flush=True)
                rows += got
        browser.close()

    texts = {q: {r["text"] for r in rows if r["question"] == q} for q in QUESTIONS}
    same = all(len(t) == 1 for t in texts.values())
    lines = [f"`{benchlib.command_line('stream', sys.argv[1:])}`, {benchlib.today()}; {benchlib.machine_note()}.",
             "", f"{len(QUESTIONS)} questions per chat, {args.rounds} rounds; medians per answer. "
             f"The final texts are {'the same' if same else 'NOT the same'} at every interval.", "",
             "| LRC_STREAM_INTERVAL_MS | browser CPU s / answer | server CPU s / answer | frames / answer | "
             "first text s | footer s |", "|---|---|---|---|---|---|"]
    summary = {"same_text": same}
    for ms in intervals:
        mine = [r for r in rows if r["interval"] == ms]
        med = {k: statistics.median(r[k] for r in mine)
               for k in ("browser_cpu", "server_cpu", "frames", "first_text", "answer")}
        summary[str(ms)] = {k: round(v, 3) for k, v in med.items()}
        lines.append(f"| {ms} | {med['browser_cpu']:.2f} | {med['server_cpu']:.2f} | {med['frames']:.0f} | "
                     f"{med['first_text']:.2f} | {med['answer']:.1f} |")
    return benchlib.report(TITLE, lines, summary, write=not args.no_write) if same else \
        benchlib.report(TITLE, lines, summary, write=False) or 1


if __name__ == "__main__":
    sys.exit(main())
