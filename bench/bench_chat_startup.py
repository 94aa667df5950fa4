"""Chat start-up: `chainlit run app.py` -> first HTTP 200 -> first answer in a real browser.

    python -m rag bench chat_startup [--question Q] [--runs N]

Three configurations, run one after the other in this one run, each a fresh server process in its
own working folder on a free loopback port:

  first-start      empty data folder: the first chat indexes docs_corpus/ (a new install)
  warm (default)   index already built; the index, embedder and model load in the background at start
  no-warmup        baseline: index already built, LRC_WARMUP=0 (everything loads on the first question)

For each: seconds from spawning the server to the first HTTP 200, to the welcome message, to the
first answer's first token and to its completion footer; then a SECOND chat (new browser context)
asks the same question, showing that the models are loaded once per process, not per chat.
Needs the browser and Playwright of the e2e tests (tests/browser_launch.py, `make chromium`).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser_launch  # noqa: E402  (the browser the tests drive: tests/browser_launch.py)
import chainlit_server  # noqa: E402  (the browser tests' server start/stop)

MESSAGES = '[data-step-type="assistant_message"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, data_dir: Path, extra_env: dict) -> tuple[subprocess.Popen, str, float]:
    work = chainlit_server.prepare_workdir(Path(tempfile.mkdtemp(dir=root, prefix="app-")))
    port = free_port()
    env = chainlit_server.base_env(data_dir, **{"LRC_MAX_NEW_TOKENS": "64", **extra_env})
    t0 = time.monotonic()
    proc = chainlit_server.spawn(work, port, env, work / "chainlit.log")
    return proc, f"http://127.0.0.1:{port}", t0


stop_server = chainlit_server.stop


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    chainlit_server.wait_http(url, proc, timeout)


def chat(browser, url: str, question: str, t0: float) -> dict:
    """Open a chat, wait for the welcome, ask; seconds since t0 for each milestone."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.set_default_timeout(300_000)
    out = {}
    page.goto(url + "/")
    page.get_by_text("Welcome to Local RAG Chat").wait_for()
    out["welcome"] = time.monotonic() - t0
    n = page.locator(MESSAGES).count()
    page.fill("#chat-input", question)
    page.click("#chat-submit")
    asked = time.monotonic()
    while True:
        texts = page.locator(MESSAGES).all_text_contents()
        new = texts[n:]
        if "first_token" not in out and any(t.strip() and not t.startswith("Retrieval") for t in new):
            out["first_token"] = time.monotonic() - t0
        if any("tokens/s" in t for t in new):
            out["answer"] = time.monotonic() - t0
            break
        time.sleep(0.05)
    out["question_to_answer"] = time.monotonic() - asked
    ctx.close()
    return out


def run_config(name: str, root: Path, data_dir: Path, env: dict, browser, question: str) -> dict:
    proc, url, t0 = start_server(root, data_dir, env)
    try:
        wait_http(url + "/", proc)
        http = time.monotonic() - t0
        first = chat(browser, url, question, t0)
        second_t0 = time.monotonic()
        second = chat(browser, url, question, second_t0)
    finally:
        stop_server(proc)
    return {"config": name, "http_200": http, **{f"chat1_{k}": v for k, v in first.items()},
            "chat2_question_to_answer": second["question_to_answer"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--question", default="How do I connect a Foundry Local endpoint?")
    ap.add_argument("--runs", type=int, default=1, help="repetitions of the two built-index configurations")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory(prefix="lrc-bench-startup-") as tmp, sync_playwright() as pw:
        root = Path(tmp)
        browser = browser_launch.launch(pw)
        data = root / "data"
        rows.append(run_config("first-start", root, data, {}, browser, args.question))  # builds the index
        for _ in range(args.runs):
            rows.append(run_config("warm (default)", root, data, {"LRC_WARMUP": "1"}, browser, args.question))
            rows.append(run_config("no-warmup (baseline)", root, data, {"LRC_WARMUP": "0"}, browser, args.question))
        browser.close()

    cols = ["http_200", "chat1_welcome", "chat1_first_token", "chat1_answer", "chat1_question_to_answer",
            "chat2_question_to_answer"]
    print("| configuration | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in dict.fromkeys(r["config"] for r in rows):
        group = [r for r in rows if r["config"] == name]
        cells = [f"{statistics.median(r[c] for r in group):.1f}" for c in cols]
        print(f"| {name} (n={len(group)}) | " + " | ".join(cells) + " |")
    print("seconds from spawning `chainlit run app.py` (chat2: from asking in a second chat to its answer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
