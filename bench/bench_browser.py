"""In-browser inference (/browser, issue 17) vs the in-process engine, same prompt, same run.

    python -m rag bench browser [--questions N] [--max-new-tokens N] [--write]

A real `chainlit run app.py` (fresh data folder: the first chat indexes docs_corpus/), headless Debian
chromium (Playwright) on /browser: the page loads the model (once from the app, once from the browser's
Cache API), then answers each question greedily in its Web Worker (ONNX Runtime Web; the backend it chose
is reported: WebAssembly here, no GPU on this machine). Each question's prompt (the pipeline's messages,
from the page's context route) is then answered by the in-process engine (OnnxGenaiEngine, its worker
process) with the same model build, and with the chat's int8 build for reference. Per answer: time to
first token (prompt in -> first token out) and decode tokens/s (tokens after the first / time after the
first); the median over the questions. The browser's first token time excludes retrieval (the page
measures from the moment it starts the model).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT / "bench"))
import benchlib  # noqa: E402
import chainlit_server  # noqa: E402

from bench_chat_startup import browser_launch, free_port  # noqa: E402

TITLE = "In-browser inference (issue 17)"
QUESTIONS = ["How do I add documents to the library?", "Does Local RAG Chat send my documents to the internet?",
             "How do I connect a Foundry Local endpoint?", "How do I use Phi-4-mini with the in-process engine?"]


def state_is(page, states: list[str], timeout: float = 600_000) -> str:
    page.wait_for_function(f"{json.dumps(states)}.includes(document.querySelector('#state').dataset.state)",
                           timeout=timeout)
    return page.locator("#state").get_attribute("data-state")


def browser_runs(url: str, questions: list[str], max_new: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"loads": [], "answers": []}
    with sync_playwright() as pw:
        browser = browser_launch.launch(pw)
        ctx = browser.new_context()
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        page.goto(url + "/")
        page.wait_for_selector("text=Welcome to Local RAG Chat", timeout=300_000)  # the guide is indexed
        for _ in range(2):  # from the app, then from the browser's cache
            t = time.perf_counter()
            page.goto(url + "/browser")
            if state_is(page, ["ready", "error"]) != "ready":
                raise SystemExit("the page could not load the model: " + page.inner_text("#problem"))
            load = page.evaluate("window.lrc.load")
            load["wall_s"] = time.perf_counter() - t
            out["loads"].append(load)
        out["backend"] = page.inner_text("#backend")
        out["isolated"] = page.evaluate("self.crossOriginIsolated")
        out["cores"] = page.evaluate("navigator.hardwareConcurrency")
        out["model"] = page.evaluate("window.lrc.status.model.name")
        for q in questions:
            page.fill("#question", q)
            page.fill("#max-tokens", str(max_new))
            page.click("#ask-button")
            if state_is(page, ["done", "error"]) != "done":
                raise SystemExit("the page failed: " + page.inner_text("#problem"))
            result, context = page.evaluate("window.lrc.result"), page.evaluate("window.lrc.context")
            if not context.get("answerable"):
                print(f"  skipped (the documents do not answer it): {q}")
                continue
            out["answers"].append({"question": q, "messages": context["messages"], "penalty": context["repetition_penalty"],
                                   "prompt_tokens": len(context["input_ids"]), "new_tokens": len(result["ids"]),
                                   "ttft_s": result["ttft"], "decode_tps": result["decodeTps"] or 0.0,
                                   "ids": result["ids"]})
            print(f"  browser: {q!r}: {len(context['input_ids'])} prompt tokens, first token {result['ttft']:.2f} s, "
                  f"{result['decodeTps'] or 0:.1f} tokens/s", flush=True)
        browser.close()
    return out


async def engine_runs(folder: str, answers: list[dict], max_new: int) -> list[dict]:
    from engines.base import GenerationOptions
    from engines.onnx.engine import OnnxGenaiEngine

    engine = OnnxGenaiEngine(extra_dirs=[folder])
    runs = []
    try:
        await engine.count_tokens([{"role": "user", "content": "warm up"}], model=folder)  # worker + model load
        for a in answers:
            gen = engine.stream(a["messages"], GenerationOptions(max_new_tokens=max_new, temperature=0,
                                                                 repetition_penalty=a["penalty"]), model=folder)
            async for _ in gen:
                pass
            u = gen.usage
            decode = max(u.total_time - u.time_to_first_token, 1e-9)
            runs.append({"prompt_tokens": u.prompt_tokens, "new_tokens": u.completion_tokens,
                         "ttft_s": u.time_to_first_token,
                         "decode_tps": (u.completion_tokens - 1) / decode if u.completion_tokens > 1 else 0.0})
    finally:
        await engine.aclose()
    return runs


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=3, help="how many of the guide questions (1-4)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--write", action="store_true", help=f"write the section '{TITLE}' of docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    from engines.onnx.models import ModelCatalog
    from rag.browser import assets
    from rag.config import settings

    for problem in (assets.runtime_problem(), assets.model_problem()):
        if problem:
            raise SystemExit(f"{problem.message} {problem.hint}")
    web = str(assets.model_dir())
    int8 = str(ModelCatalog(**settings().catalog_config()).resolve("smollm2"))
    root = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    work = chainlit_server.prepare_workdir(root / "app")
    port = free_port()
    env = chainlit_server.base_env(root / "data", LRC_ENGINE="onnx", PYTHONUNBUFFERED="1")
    proc = chainlit_server.spawn(work, port, env, root / "chainlit.log")
    url = f"http://127.0.0.1:{port}"
    try:
        chainlit_server.wait_http(url + "/", proc, 180)
        b = browser_runs(url, QUESTIONS[:max(1, min(args.questions, 4))], args.max_new_tokens)
    finally:
        chainlit_server.stop(proc)
    if not b["answers"]:
        raise SystemExit("no question was answered by the model")
    same = asyncio.run(engine_runs(web, b["answers"], args.max_new_tokens))
    chat = asyncio.run(engine_runs(int8, b["answers"], args.max_new_tokens))
    rows = [("Browser page, " + b["backend"], b["answers"]), (f"In-process engine, same build ({Path(web).name})", same),
            (f"In-process engine, the chat's int8 build ({Path(int8).name})", chat)]
    lines = [f"`{benchlib.command_line('browser', argv if argv is not None else sys.argv[1:])}` — {benchlib.today()}; "
             f"{benchlib.machine_note()}.", "",
             f"Headless Debian chromium, backend chosen by the page: **{b['backend']}** (no GPU and no WebGPU adapter "
             f"on this machine, so WebGPU is not measured; cross-origin isolated: {b['isolated']}, "
             f"{b['cores']} cores seen by the page). Model: {b['model']}. {len(b['answers'])} guide questions, "
             f"the pipeline's prompt (passages + question), greedy, up to {args.max_new_tokens} new tokens, "
             "the chat's repetition penalty; medians.", "",
             "| runs on | prompt tokens | time to first token | decode tokens/s |", "|---|---:|---:|---:|"]
    for label, runs in rows:
        lines.append(f"| {label} | {median(runs, 'prompt_tokens'):.0f} | {median(runs, 'ttft_s'):.2f} s | "
                     f"{median(runs, 'decode_tps'):.1f} |")
    first, cached = b["loads"]
    megabytes = sum(f["size"] for f in assets.model_files()) / 1e6
    lines += ["", f"Loading the model in the page: {first['seconds']:.1f} s from the app ({first['filesSeconds']:.1f} s "
                  f"fetching its {megabytes:.0f} MB, {first['sessionSeconds']:.1f} s creating "
                  f"the session), {cached['seconds']:.1f} s from the browser's Cache API on the next visit.",
              "", "The int8 build (MatMulNBits) loads in the browser too, but ONNX Runtime Web's WebAssembly kernels "
                  "decode it at about 1 token/s (checked while building this page), which is why the page has its "
                  "own fp32 build (`python -m rag models pull smollm2-web`)."]
    summary = {"backend": b["backend"], "model": b["model"], "questions": len(b["answers"]),
               "browser": {"ttft_s": round(median(b["answers"], "ttft_s"), 3),
                           "decode_tps": round(median(b["answers"], "decode_tps"), 2)},
               "engine_same_build": {"ttft_s": round(median(same, "ttft_s"), 3),
                                     "decode_tps": round(median(same, "decode_tps"), 2)},
               "engine_int8": {"ttft_s": round(median(chat, "ttft_s"), 3),
                               "decode_tps": round(median(chat, "decode_tps"), 2)},
               "load_s": {"from_app": round(first["seconds"], 2), "from_cache": round(cached["seconds"], 2)}}
    for line in lines:
        print(line)
    return benchlib.report(TITLE, lines, summary, args.write)


if __name__ == "__main__":
    sys.exit(main())
