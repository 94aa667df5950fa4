"""`python -m rag compare "question" --a onnx:smollm2 --b foundry:phi-4-mini`: two engine/model choices
answer one question from the same passages (rag.compare).

The quote is printed once; then answer A and answer B, each in full (both stream at the same time, so
each is collected and printed when both are done), each with its figures line (engine, model, time to
first token, tokens/s, prompt + answer tokens, total) and the passages it cited (file, page); then the
verdict line. Progress goes to stderr. Exit status: 0 if at least one side answered (or the documents
do not answer the question: said once, as `rag ask` does), 1 if neither did, 2 for a bad --a / --b.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from dataclasses import dataclass, field

from rag.cmd import add_choice_arguments, exit_status, until_stopped

HELP = "answer one question with two engines/models side by side (same passages), with a measured verdict"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="+", help="the question (quote it, or pass several words)")
    p.add_argument("--a", dest="a", help="ENGINE[:MODEL] of answer A, e.g. onnx:smollm2 (default: LRC_ENGINE / LRC_MODEL)")
    p.add_argument("--b", dest="b", required=True, help="ENGINE[:MODEL] of answer B, e.g. foundry:phi-4-mini "
                                                      "(no model: the engine's default)")
    add_choice_arguments(p, skip=("engine", "model"))  # -k, --mode, ...: Options' other choices, for both sides
    p.add_argument("--index-dir", help="index folder (default: the library in LRC_DATA_DIR)")


@dataclass
class SideAnswer:
    """One side's answer as it arrives."""

    text: str = ""
    notes: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # figures, sources, error


def figures(side: str, done) -> str:
    u, t = done.usage, done.timings
    ttft = f"{u.time_to_first_token:.2f} s" if u.time_to_first_token is not None else "–"
    return (f"[{side} · {done.engine} · {done.model} · TTFT {ttft} · {u.tokens_per_second:.1f} tokens/s · "
            f"{u.prompt_tokens} prompt + {u.completion_tokens} answer tokens · total {t.get('total', 0.0):.2f} s]")


def sources(ev) -> list[str]:
    if ev.cited:
        return ["Cited: " + "; ".join(f"[{ev.used.index(h) + 1}] {h.chunk.citation()}" if h in ev.used
                                       else h.chunk.citation() for h in ev.cited)]
    if ev.used:
        return [f"Cited: none (it read {len(ev.used)} passages: "
                + "; ".join(h.chunk.citation() for h in ev.used) + ")"]
    return []


def choices(args: argparse.Namespace):
    """(Options A, Options B); ValueError (parse_choice's message) for a bad --a / --b."""
    from engines import registry
    from rag import pipeline as pl
    from rag.compare import parse_choice

    engines = [*registry.ENGINES, pl.AUTO]
    out = []
    for spec in (args.a, args.b):
        values = {**vars(args), "engine": None, "model": None}
        if spec is not None:
            values["engine"], values["model"] = parse_choice(spec, engines)
        out.append(pl.Options().updated(values))
    return out


async def _run(args: argparse.Namespace, a, b) -> int:
    from rag import pipeline as pl
    from rag.compare import Side, Verdict, compare

    out, err = sys.stdout, sys.stderr
    from rag.cmd.index import open_library

    lib = functools.partial(open_library, args)  # --index-dir, else the shared one: opened when searched
    blocks = {"A": SideAnswer(), "B": SideAnswer()}
    control = pl.Control()

    async def loop() -> int:
        status = 1
        async for ev in compare(" ".join(args.question), [], a, b, control, lib=lib):
            if isinstance(ev, Side):
                block, e = blocks[ev.side], ev.event
                if isinstance(e, pl.Token):
                    if not block.text:
                        print(f"[{ev.side}: answering]", file=err, flush=True)
                    block.text += e.text
                elif isinstance(e, pl.Revised):
                    block.text = e.text
                elif isinstance(e, pl.Notice):
                    block.notes.append(e.text)
                elif isinstance(e, pl.NothingFound):
                    block.notes.append(e.message)
                elif isinstance(e, pl.Routed):
                    block.notes.append(e.text)
                elif isinstance(e, pl.FellBack):
                    block.notes.append(f"{e.reason}; its partial answer was: {e.partial.strip()!r}")
                    block.text = ""
                elif isinstance(e, pl.Sources):
                    block.lines += sources(e)
                elif isinstance(e, pl.Done):
                    block.lines.append(figures(ev.side, e))
                    print(f"[{ev.side}: done]", file=err, flush=True)
                elif isinstance(e, pl.Failed):
                    block.lines.append(f"Error: {e.text}")
                    print(f"[{ev.side}: failed]", file=err, flush=True)
            elif isinstance(ev, Verdict):
                for side, opts in (("A", a), ("B", b)):
                    block = blocks[side]
                    choice = f"{opts.engine}:{opts.model}" if opts.model else f"{opts.engine} (default model)"
                    print(f"=== Answer {side}: {choice} ===", file=out)
                    for note in block.notes:
                        print(f"[{note}]", file=out)
                    if block.text.strip():
                        print(block.text.strip(), file=out)
                    for line in block.lines:
                        print(line, file=out)
                    print(file=out)
                print(f"Verdict: {ev.text}", file=out)
                ended = list(ev.outcomes.values())
                failed = [o.failed.category for o in ended if o.failed is not None]
                status = 0 if any(o.done is not None for o in ended) else exit_status(failed[0]) if failed else 1
            elif isinstance(ev, pl.Retrieved):
                print(f"[retrieval: {len(ev.hits)} passages, {ev.mode}, {ev.seconds:.2f}s]", file=err)
            elif isinstance(ev, pl.NothingFound):
                print(f"[{ev.message}]", file=err if ev.answering else out)
                if not ev.answering:
                    status = 0  # the documents do not answer it: that is the answer, for both
            elif isinstance(ev, pl.Notice):
                print(f"[{ev.text}]", file=err)
            elif isinstance(ev, pl.Quoted):
                print(f"From your documents:\n{ev.text}\n", file=out, flush=True)
            elif isinstance(ev, pl.Failed):
                print(f"Error: {ev.text}", file=err)
                status = exit_status(ev.category)
        return status

    return await until_stopped(loop(), control)


def run(args: argparse.Namespace) -> int:
    try:
        a, b = choices(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, a, b))
