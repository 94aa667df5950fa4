"""Two engine/model choices answering one question side by side, from the same passages.

    async for event in compare(question, history, Options(engine="onnx"), Options(engine="foundry"), lib=lib):
        Retrieved -> [Notice]* -> [Quoted] -> Side("A" | "B", event)* -> Verdict

Retrieval and the quote are done once (with A's retrieval settings); then both answers are generated
at the same time (``pipeline.respond`` twice, interleaved as their events arrive: the in-process
worker time-slices between requests). Each side's events are the ones a single answer yields
(Token* -> [Revised] -> Sources -> Done, or Failed), wrapped in :class:`Side`. The :class:`Verdict`
states the measured differences: time to first token, decode speed, length, shared citations.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, AsyncIterator, Sequence

from engines.base import Message
from rag.events import Done, Event, Failed, Sources
from rag.pipeline import Control, Options, Prepared, prepare, respond

if TYPE_CHECKING:
    from rag.pipeline import LibrarySource

SIDES = ("A", "B")


@dataclass
class Side:
    """An event of one side of a comparison."""

    side: str  # "A" | "B"
    event: Event


@dataclass
class Outcome:
    """What one side ended with (filled from its Done / Sources / Failed events)."""

    done: Done | None = None
    sources: Sources | None = None
    failed: Failed | None = None


@dataclass
class Verdict:
    text: str  # one line a user reads under both answers
    outcomes: dict[str, Outcome] = field(default_factory=dict)


async def compare(question: str, history: Sequence[Message] | None, a: Options, b: Options,
                  control: Control | None = None, *, lib: LibrarySource) -> AsyncIterator[Event | Side | Verdict]:
    """Answer ``question`` from ``lib`` with both option sets (see the module docstring)."""
    a, b = a.normalised(), b.normalised()
    # both sides need the model: "quote only" would leave nothing to compare
    a = replace(a, style="quote+answer") if a.style == "quote" else a
    b = replace(b, top_k=a.top_k, mode=a.mode, style=a.style)
    control = control or Control()
    async for item in prepare(question, history, a, lib=lib):
        if not isinstance(item, Prepared):  # without one, the answer ended before the model
            yield item
            continue
        async for event in _both(item, a, b, control):  # the Prepared comes last
            yield event


async def _both(prep: Prepared, a: Options, b: Options, control: Control) -> AsyncIterator[Side | Verdict]:
    """Both sides' answers from ``prep``, interleaved as their events arrive, then the Verdict."""
    queue: asyncio.Queue = asyncio.Queue()
    outcomes = {side: Outcome() for side in SIDES}

    async def run(side: str, opts: Options) -> None:
        try:
            async for event in respond(prep, opts, control):
                await queue.put(Side(side, event))
        except Exception as exc:  # one side's bug must not lose the other's answer
            await queue.put(Side(side, Failed.of(exc, f"This answer failed: {exc}", "")))
        finally:
            await queue.put(Side(side, None))

    tasks = [asyncio.create_task(run(side, opts)) for side, opts in zip(SIDES, (a, b))]
    running = len(tasks)
    try:
        while running:
            item: Side = await queue.get()
            if item.event is None:
                running -= 1
                continue
            out = outcomes[item.side]
            if isinstance(item.event, Done):
                out.done = item.event
            elif isinstance(item.event, Sources):
                out.sources = item.event
            elif isinstance(item.event, Failed):
                out.failed = item.event
            yield item
    finally:
        if running:  # the reader went away (stop button): stop both generations
            await control.cancel()
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    yield Verdict(verdict(outcomes["A"], outcomes["B"]), outcomes)


def _ratio(x: float, y: float) -> str:
    return f"{x / y:.1f}x" if y > 0 else "–"


def verdict(a: Outcome, b: Outcome) -> str:
    """The measured differences between two answers, in one line."""
    for side, other, name in ((a, b, "A"), (b, a, "B")):
        if side.done is None:
            why = side.failed.error if side.failed else "it was stopped"
            return f"Only {'B' if name == 'A' else 'A'} answered: {name} did not ({why})." if other.done \
                else f"Neither answered ({why})."
    ua, ub = a.done.usage, b.done.usage
    parts = []
    ta, tb = ua.time_to_first_token, ub.time_to_first_token
    if ta and tb:
        slow, fast = ("B", "A") if tb >= ta else ("A", "B")
        parts.append(f"{slow} began {_ratio(max(ta, tb), min(ta, tb))} later ({max(ta, tb):.2f} s vs "
                     f"{min(ta, tb):.2f} s)")
    sa, sb = ua.tokens_per_second, ub.tokens_per_second
    if sa and sb:
        fast = "A" if sa >= sb else "B"
        parts.append(f"{fast} wrote {_ratio(max(sa, sb), min(sa, sb))} faster ({sa:.1f} vs {sb:.1f} tokens/s)")
    parts.append(f"{ua.completion_tokens} vs {ub.completion_tokens} answer tokens")
    ca = {(h.chunk.source, h.chunk.page, h.chunk.text) for h in (a.sources.cited if a.sources else [])}
    cb = {(h.chunk.source, h.chunk.page, h.chunk.text) for h in (b.sources.cited if b.sources else [])}
    if ca or cb:
        parts.append(f"cited {len(ca & cb)} of the same passages (A cited {len(ca)}, B {len(cb)})")
    else:
        parts.append("neither cited a passage")
    return "; ".join(parts) + "."


def parse_choice(spec: str, engines: Sequence[str]) -> tuple[str, str]:
    """"onnx:smollm2" -> ("onnx", "smollm2"); "foundry" -> ("foundry", "") (the engine's default model).
    Raises ValueError naming the known engines when the engine part is not one of them."""
    engine, _, model = (spec or "").strip().partition(":")
    if engine not in engines:
        raise ValueError(f"'{spec}' does not name an engine: write ENGINE[:MODEL] with ENGINE one of "
                         f"{', '.join(engines)}.")
    return engine, model.strip()
