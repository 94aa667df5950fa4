"""Chat history: opening a long chat in the browser, and what persisting costs each answer.

    python -m rag bench history [--messages 200] [--elements 50] [--opens 5] [--questions 20] [--write-benchmarks]

1. Open a long chat. A real chat is made in the browser (a question answered quote-only, with its
   source passages as elements); its rows are then cloned in the history database until the chat
   holds ``--messages`` messages and ``--elements`` source elements (real rows, real element files).
   Measured in chromium: from clicking the chat in the sidebar to its last message on screen, against
   the baseline of opening the template chat (part 2's, ~60 messages), alternating, ``--opens`` times each.
2. Added time per answer. Two servers side by side, history on and off (LRC_HISTORY=0), both quote-only
   (no model: what is left is the app and the persistence); the same questions alternate between them;
   from pressing send to the answer's footer on screen, in the browser.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "bench"))
sys.path.insert(0, str(REPO_ROOT))
import browser_launch  # noqa: E402  (the browser the tests drive: tests/browser_launch.py)
import chainlit_server  # noqa: E402  (the browser tests' server start/stop)
from benchlib import command_line, machine_note, report, today  # noqa: E402
from rag.chat.history import SHOWN_MESSAGES  # noqa: E402

ANSWERS = '[data-step-type="assistant_message"]'
QUESTIONS = ["How do I add documents to the library?", "How do I connect a Foundry Local endpoint?",
             "Does Local RAG Chat send my documents to the internet?", "How do I use Phi-4-mini?",
             "What does the Passages setting change?", "How do I remove a document?",
             "Which file types can I add?", "What is the quote-only answer style?"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, name: str, **env: str):
    work = chainlit_server.prepare_workdir(root / name / "app")
    port = free_port()
    proc = chainlit_server.spawn(work, port, chainlit_server.base_env(root / name / "data", LRC_ANSWER_STYLE="quote",
                                                                      PYTHONUNBUFFERED="1", **env),
                                 root / name / "chainlit.log")
    url = f"http://127.0.0.1:{port}"
    chainlit_server.wait_http(url + "/", proc, 180)
    return proc, url, root / name / "data"


def open_chat(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(300_000)
    page.goto(url + "/")
    page.wait_for_selector("#chat-input")
    page.get_by_text("Welcome to Local RAG Chat").wait_for()
    return ctx, page


def ask(page, question: str, server_s: list | None = None) -> float:
    """Seconds from pressing send to the answer's footer on screen; ``server_s`` gets the pipeline's own
    time from its footer ("total N s")."""
    done = page.locator(ANSWERS).filter(has_text="quote only (no model)").count()
    page.fill("#chat-input", question)
    t = time.perf_counter()
    page.click("#chat-submit")
    footer = page.locator(ANSWERS).filter(has_text="quote only (no model)").nth(done)
    footer.wait_for()
    took = time.perf_counter() - t
    if server_s is not None:
        server_s.append(float(re.search(r"total ([0-9.]+) s", footer.text_content()).group(1)))
    page.wait_for_selector("#stop-button", state="detached")
    return took


# ------------------------------------------------------------------ 1. a long chat
def clone_chat(data: Path, tid: str, messages: int, elements: int) -> str:
    """A new chat of ``messages`` messages and ``elements`` source elements, cloned from chat ``tid``'s
    rows (its steps, its elements and their stored files); returns the new chat's id."""
    from rag.chat.history import LocalStorage

    storage = LocalStorage(data / "history")
    db = sqlite3.connect(data / "history.sqlite3")
    db.row_factory = sqlite3.Row
    thread = dict(db.execute('SELECT * FROM threads WHERE "id" = ?', (tid,)).fetchone())
    steps = [dict(r) for r in db.execute('SELECT * FROM steps WHERE "threadId" = ? ORDER BY "createdAt"', (tid,))]
    elems = [dict(r) for r in db.execute('SELECT * FROM elements WHERE "threadId" = ?', (tid,))]
    per_round = sum(s["type"] in ("user_message", "assistant_message") for s in steps)
    new_tid = str(uuid.uuid4())
    start = datetime(2026, 1, 1)
    db.execute('INSERT INTO threads ("id", "createdAt", "name", "userId", "userIdentifier", "metadata") '
               'VALUES (?, ?, ?, ?, ?, ?)', (new_tid, start.isoformat() + "Z", f"long chat ({messages} messages)",
                                             thread["userId"], thread["userIdentifier"], thread["metadata"]))
    made_msgs = made_elems = rounds = 0
    while made_msgs < messages:
        ids = {s["id"]: str(uuid.uuid4()) for s in steps}
        for i, s in enumerate(steps):
            row = dict(s, id=ids[s["id"]], threadId=new_tid, parentId=ids.get(s["parentId"], s["parentId"]),
                       createdAt=(start + timedelta(seconds=rounds * 60 + i)).isoformat() + "Z")
            if s["type"] == "assistant_message" and made_msgs + 1 >= messages:
                row["output"] = (row["output"] or "") + "\n\nEND-OF-LONG-CHAT"
            db.execute(f'INSERT INTO steps ({", ".join(chr(34) + k + chr(34) for k in row)}) '
                       f'VALUES ({", ".join("?" for _ in row)})', list(row.values()))
            made_msgs += s["type"] in ("user_message", "assistant_message")
        for e in elems:
            if made_elems >= elements:
                break
            key = f'{thread["userId"]}/{uuid.uuid4()}/{e["name"]}'
            found = storage.open(e["objectKey"])
            storage._put(key, found[0].read_bytes(), found[1])
            row = dict(e, id=key.split("/")[1], threadId=new_tid, forId=ids.get(e["forId"], e["forId"]),
                       objectKey=key, url=None)
            db.execute(f'INSERT INTO elements ({", ".join(chr(34) + k + chr(34) for k in row)}) '
                       f'VALUES ({", ".join("?" for _ in row)})', list(row.values()))
            made_elems += 1
        rounds += 1
    db.commit()
    db.close()
    assert per_round >= 2, "the template chat has a question and an answer"
    return new_tid


def time_open(page, url: str, tid: str, last_text: str) -> float:
    """From clicking the chat in the sidebar to its last message on screen (a new chat opened first)."""
    page.goto(url + "/")
    page.wait_for_selector("#chat-input")
    entry = page.locator(f"#thread-{tid}")
    entry.wait_for()
    t = time.perf_counter()
    entry.click()
    page.get_by_text(last_text).first.wait_for()
    return time.perf_counter() - t


# ------------------------------------------------------------------ the run
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--elements", type=int, default=50)
    ap.add_argument("--opens", type=int, default=5)
    ap.add_argument("--questions", type=int, default=20, help="answers per server in part 2")
    ap.add_argument("--write-benchmarks", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="lrc-bench-history-"))
    procs = []
    try:
        with sync_playwright() as pw:
            browser = browser_launch.launch(pw)
            on_proc, on_url, on_data = start(root, "history-on")
            procs.append(on_proc)
            off_proc, off_url, _ = start(root, "history-off", LRC_HISTORY="0")
            procs.append(off_proc)
            on_ctx, on_page = open_chat(browser, on_url)
            off_ctx, off_page = open_chat(browser, off_url)
            # part 2 first (fresh chats); its first answers warm both servers and are not counted
            ask(on_page, QUESTIONS[0])
            ask(off_page, QUESTIONS[0])
            t_on, t_off, p_on, p_off = [], [], [], []
            for i in range(args.questions):
                q = QUESTIONS[i % len(QUESTIONS)]
                pair = [(on_page, t_on, p_on), (off_page, t_off, p_off)]
                for page, out, pipeline_s in (pair if i % 2 == 0 else pair[::-1]):
                    out.append(ask(page, q, pipeline_s))
            served = {name: [float(x) for x in re.findall(r"answered in (\d+) ms",
                                                          (root / name / "chainlit.log").read_text())][1:]
                      for name in ("history-on", "history-off")}  # the server's own: question -> last text
            tid = on_page.url.rsplit("/", 1)[-1]
            time.sleep(2)  # the last writes land
            on_ctx.close()
            off_ctx.close()

            # part 1: the chat above is the template of a long one; open both, alternating
            long_tid = clone_chat(on_data, tid, args.messages, args.elements)
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(on_url + "/")
            page.wait_for_selector("#chat-input")
            last_small = "quote only (no model)"
            long_s, small_s = [], []
            time_open(page, on_url, long_tid, "END-OF-LONG-CHAT")  # warm-up, not counted
            for _ in range(args.opens):
                long_s.append(time_open(page, on_url, long_tid, "END-OF-LONG-CHAT"))
                small_s.append(time_open(page, on_url, tid, last_small))
            shown = page.locator('[data-step-type="user_message"]').count()
            page.goto(on_url + f"/thread/{long_tid}")
            page.get_by_text("END-OF-LONG-CHAT").first.wait_for()
            shown = page.locator('[data-step-type="user_message"]').count() + page.locator(ANSWERS).count()
            page.screenshot(path=str(root / "long-chat.png"))
            ctx.close()
            browser.close()
        db_mb = sum(p.stat().st_size for p in on_data.glob("history.sqlite3*")) / 1e6
        files_mb = sum(p.stat().st_size for p in (on_data / "history" / "blobs").iterdir()) / 1e6
    finally:
        for proc in procs:
            chainlit_server.stop(proc)
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    added_ms = med(a - b for a, b in zip(t_on, t_off)) * 1000  # each pair: the same question, one after the other
    lines = [
        f"Run {today()}: `{command_line('history', sys.argv[1:])}`. {machine_note()}.", "",
        f"**Opening a chat** of {args.messages} messages and {args.elements} source elements (clicked in the "
        f"sidebar, until its last message is on screen; {args.opens} opens each, alternating). A reopened "
        f"chat shows its newest {SHOWN_MESSAGES} messages and a note (the Earlier button shows the rest): "
        f"{shown} messages on the page:", "",
        "| chat | median s | min s | max s |", "|---|---|---|---|",
        f"| long ({args.messages} messages, {args.elements} elements) | {med(long_s):.3f} | {min(long_s):.3f} | "
        f"{max(long_s):.3f} |",
        f"| baseline: short (the template chat) | {med(small_s):.3f} | {min(small_s):.3f} | {max(small_s):.3f} |",
        "", f"Target: under 1 s. History database {db_mb:.1f} MB, element files {files_mb:.2f} MB.", "",
        f"**Added time per answer** from persisting it: {args.questions} quote-only answers per server, the same "
        "questions alternating between a server with history and one without (LRC_HISTORY=0); send to "
        "footer on screen:", "",
        "| server | median ms | p90 ms |", "|---|---|---|",
        f"| history on | {med(t_on) * 1000:.0f} | {sorted(t_on)[int(0.9 * (len(t_on) - 1))] * 1000:.0f} |",
        f"| history off (baseline) | {med(t_off) * 1000:.0f} | "
        f"{sorted(t_off)[int(0.9 * (len(t_off) - 1))] * 1000:.0f} |",
        "", f"Added: **{added_ms:+.0f} ms**, the median of the {len(t_on)} paired differences (the same question "
        f"on both, one right after the other; target ≤ 20 ms). The pipeline's own time (the footer's "
        f"total) was {med(p_on) * 1000:.0f} ms with history and {med(p_off) * 1000:.0f} ms without; the server's "
        f"own time from the question to the answer's last text (its log) {med(served['history-on']):.0f} ms with "
        f"history and {med(served['history-off']):.0f} ms without: **{med(served['history-on']) - med(served['history-off']):+.0f} ms** "
        "added on the server, where persisting happens.",
    ]
    lines += ["", "What the figures say (measured by hand on this machine, 2026-11-30; not re-measured by this script):",
              "- Before a reopened chat was limited to its newest messages, the same 200-message chat took 2.1–2.6 s "
              "to show (every message sent to the page). With each answer replaced by one plain line it still took "
              "1.3 s, and without its 50 elements 1.5 s: the cost is the page drawing each message (~6 ms), not the "
              "data — reading the chat from SQLite takes 15 ms (325 steps, 50 elements; HistoryLayer.get_thread).",
              "- A history write takes ~2 ms (create_step, in-process); writes are queued and held while an answer "
              "is written, so the server answers as fast with history as without (its own time above). What the "
              "browser shows later with history (the paired difference) is not in the server; with history on, "
              "Chainlit's page also draws the chat list and each message's feedback buttons, the likely cause "
              "(not isolated). Two solo runs of 31 answers each gave 807 ms with history and 833 ms without."]
    print("\n".join(lines))
    summary = {"open_long_s": round(med(long_s), 3), "open_short_s": round(med(small_s), 3),
               "answer_on_ms": round(med(t_on) * 1000, 1), "answer_off_ms": round(med(t_off) * 1000, 1),
               "added_ms": round(added_ms, 1), "pipeline_on_ms": round(med(p_on) * 1000, 1),
               "pipeline_off_ms": round(med(p_off) * 1000, 1), "server_on_ms": med(served["history-on"]),
               "server_off_ms": med(served["history-off"])}
    return report("Chat history", lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
