"""`python -m rag ask "question"`: the chat's pipeline in a terminal (streamed answer, sources, timings)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from rag.cmd import add_choice_arguments, exit_status, until_stopped

HELP = "ask the library a question; the answer streams to the terminal, then sources and timings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="+", help="the question (quote it, or pass several words)")
    add_choice_arguments(p)  # --engine, --model, -k, --mode, --temperature, --max-tokens, --style: Options' choices
    p.add_argument("--show-passages", action="store_true", help="print the retrieved passages before the answer")


async def _run(args: argparse.Namespace) -> int:
    from rag import pipeline as pl

    opts = pl.Options().updated(vars(args))
    out, err = sys.stdout, sys.stderr
    control = pl.Control()

    async def loop() -> int:
        status = 0
        async for ev in pl.answer(" ".join(args.question), [], opts, control, lib=pl.library):
            if isinstance(ev, pl.Retrieved):
                print(f"[retrieval: {len(ev.hits)} passages, {ev.mode}, {ev.seconds:.2f}s]", file=err)
                if args.show_passages:
                    for h in ev.hits:
                        snippet = " ".join(h.chunk.text.split())[:160]
                        print(f"  #{h.rank} {h.chunk.citation()} score={h.score:.3f}: {snippet}", file=err)
            elif isinstance(ev, pl.NothingFound):
                print(f"[{ev.message}]", file=err if ev.answering else out)
            elif isinstance(ev, pl.Notice):
                print(f"[{ev.text}]", file=err)
            elif isinstance(ev, pl.Quoted):
                print(f"From your documents:\n{ev.text}\n", file=out, flush=True)
            elif isinstance(ev, pl.Routed):
                print(f"[↪ {ev.text}]", file=err, flush=True)
            elif isinstance(ev, pl.FellBack):
                print(f"\n[interrupted: {ev.reason}; the next target answers in full]", file=err, flush=True)
            elif isinstance(ev, pl.Token):
                out.write(ev.text)
                out.flush()
            elif isinstance(ev, pl.Revised):
                print("\n\n--- the answer checked against your documents ---", file=out)
                print(ev.text, file=out)
            elif isinstance(ev, pl.Sources):
                if ev.used:
                    print("\n\nSources:")
                    for i, h in enumerate(ev.used, start=1):
                        mark = "*" if h in ev.cited else " "
                        print(f" {mark}[{i}] {h.chunk.citation()}  ({h.chunk.source})")
            elif isinstance(ev, pl.Done):
                u, t = ev.usage, ev.timings
                ttft = f"{u.time_to_first_token:.2f}s" if u.time_to_first_token is not None else "-"
                print(f"\n[{ev.engine} · {ev.model} · retrieval {t.get('retrieval', 0):.2f}s · "
                      f"prompt {u.prompt_tokens} tok · TTFT {ttft} · {u.completion_tokens} tok at "
                      f"{u.tokens_per_second:.1f} tok/s · total {t.get('total', 0):.2f}s]", file=err)
            elif isinstance(ev, pl.Failed):
                print(f"\nError: {ev.text}", file=err)
                status = exit_status(ev.category)
        return status

    return await until_stopped(loop(), control)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
