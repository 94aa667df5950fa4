"""How the chat shows what the pipeline yields: ingest progress, the Retrieval step, an answer message
(quote, streamed text, sources in the side view, footer) — one AnswerView per answer (two in a comparison).

Text from documents and models is Markdown the page renders: everything an answer message shows goes
through one rag.markup.Neutraliser (no image, raw HTML or script link survives, streamed tokens
included), and passages shown in the page's code blocks (the side view, the Retrieval step) through
markup.code_text."""
from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import time

import chainlit as cl

from engines import registry
from rag import pipeline as pl
from rag.config import settings
from rag.markup import Neutraliser, code_text, neutralise

log = logging.getLogger(__name__)


async def run_ingest(events, title: str):
    """Show an ingest's progress in one message, sent with the first event (an ingest with nothing to
    do shows nothing); returns its report (None when it failed or did nothing)."""
    msg, last, report = None, 0.0, None
    async for ev in events:
        if msg is None:
            msg = cl.Message(content=f"{title}…")
            await msg.send()
        if isinstance(ev, pl.Progress) and (time.monotonic() - last > 0.5 or ev.progress.stage == "ocr"):
            p = ev.progress
            msg.content = f"{title}… {p.describe()} ({p.done}/{p.total} files)"
            await msg.update()
            last = time.monotonic()
        elif isinstance(ev, pl.Ingested):
            r = report = ev.report
            lines = [f"{title}: done. {r.summary()}"]  # names and reasons: neutralised below
            for f, reason in r.failed:
                name = os.path.basename(str(f))
                reason = str(reason).removeprefix(f"{f}: ").removeprefix(f"{name}: ")
                lines.append(f"- ✗ **{name}** was not indexed: {reason}")
            lines += [f"- ⚠️ {line}" for line in r.warning_lines()]
            lines += [f"- skipped {line}" for line in r.skipped_lines()]
            msg.content = neutralise("\n".join(lines))
            await msg.update()
        elif isinstance(ev, pl.Failed):  # a cancel in the Library view, or a failure
            state = ("cancelled" if ev.category == pl.ErrorCategory.INTERRUPTED
                     else f"failed ({FAILURE_LABELS[ev.category].lower()})")
            msg.content = neutralise(f"{title}: {state}. {ev.text}")
            await msg.update()
    return report


# what the chat calls each kind of failure (pl.ErrorCategory), before the error's own sentence
FAILURE_LABELS = {
    pl.ErrorCategory.BAD_REQUEST: "Cannot answer this",
    pl.ErrorCategory.TOO_LONG: "Too long for the model",
    pl.ErrorCategory.NOT_FOUND: "Not found",
    pl.ErrorCategory.UNAVAILABLE: "Not available right now",
    pl.ErrorCategory.TIMEOUT: "No answer in time",
    pl.ErrorCategory.INTERRUPTED: "Answer interrupted",
    pl.ErrorCategory.BUSY: "The server is busy",
    pl.ErrorCategory.INTERNAL: "Error",
}


def failure_text(ev: pl.Failed) -> str:
    """A failed answer as the chat shows it: "**⚠️ Not available right now:** The library is ..."."""
    return f"**⚠️ {FAILURE_LABELS[ev.category]}:** {ev.text}"


def retrieval_text(ev: pl.Retrieved) -> str:
    if ev.mode == "off":
        return "Retrieval is off."
    scope = "all documents" if ev.scope is None else f"only this chat's files ({len(ev.scope)})"
    lines = [f"mode: {ev.mode} · scope: {scope} · {len(ev.hits)} passages · {ev.seconds:.2f} s", ""]
    for h in ev.hits:
        extra = " ".join(f"{k}={v:.3f}" for k, v in (h.scores or {}).items() if isinstance(v, (int, float)))
        lines += [f"#{h.rank} {h.chunk.citation()}  score={h.score:.3f} {extra}".rstrip(),
                  " ".join(h.chunk.text.split())[:600], ""]
    return code_text("\n".join(lines))  # the step shows it in a code block: no line may end that block


def _wrap(text: str, width: int = 40) -> str:
    """Long lines wrapped for the side view (code blocks do not wrap); the words are unchanged."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) or line
                     for line in text.splitlines())


async def source_elements(src: pl.Sources) -> tuple[list, str]:
    """The side view's elements and their names for the Sources line. The page links each name in the
    message to its element, and renders a name inside that link as Markdown: names are neutralised (the
    answer's neutraliser leaves them unchanged, so they still match). A passage is shown in a code block
    the page wraps around it, which it cannot close."""
    elements, names, pdfs = [], [], set()
    for h in src.shown:
        n = src.used.index(h) + 1
        name = neutralise(f"[{n}] {h.chunk.citation()}")
        names.append(name)
        elements.append(cl.Text(name=name, content=code_text(_wrap(h.chunk.text)), language="text", display="side"))
        if h.chunk.source.lower().endswith(".pdf") and os.path.isfile(h.chunk.source) \
                and (h.chunk.source, h.chunk.page) not in pdfs:
            pdfs.add((h.chunk.source, h.chunk.page))
            pdf_name = neutralise(f"open {h.chunk.name} at p. {h.chunk.page or 1}")
            names.append(pdf_name)
            elements.append(cl.Pdf(name=pdf_name, path=h.chunk.source, page=h.chunk.page or 1, display="side"))
    return elements, " · ".join(names)


def footer(ev: pl.Done) -> str:
    u, t = ev.usage, ev.timings
    first = f"first text {t['first_text']:.2f} s · " if "first_text" in t else ""
    if not ev.engine:
        return f"`quote only (no model) · {first}total {t.get('total', 0):.2f} s`"
    ttft = f"{u.time_to_first_token:.2f} s" if u.time_to_first_token is not None else "–"
    return (f"`{registry.labels().get(ev.engine, ev.engine)} · {ev.model} · {first}TTFT {ttft} · "
            f"{u.tokens_per_second:.1f} tokens/s · {u.prompt_tokens} prompt + {u.completion_tokens} answer tokens`")


def quote_text(ev: pl.Quoted) -> str:
    return "**From your documents:**\n" + "\n>\n".join(f"> {t} — *{h.chunk.citation()}*" for t, h in ev.quotes)


class AnswerView:
    """One answer message: renders the pipeline's events for it (one per side in a comparison). All
    its text goes through ``_say`` (one Neutraliser, which may hold back a few characters of a token
    until the next ones show what they are); a rewrite of the text after the head starts a fresh one
    (the head ends with a blank line: nothing is held there).

    The model's pieces reach the page at most once per LRC_STREAM_INTERVAL_MS: the page renders the whole
    message again for each (a browser's CPU per answer: docs/BENCHMARKS.md, "Streaming to the page"); a
    piece that comes sooner waits, with the ones after it, until the interval is over (``_later``). Every
    write to the message goes through ``_send``, in order."""

    def __init__(self, head: str = ""):
        self.msg = cl.Message(content="")
        self.head = neutralise(head)  # what stays above the model's text: a title, the quote, routing lines, partials
        self.neutraliser = Neutraliser()
        self.notes: list[str] = []
        self.text = ""  # the whole answer, once Done
        self.waiting = False  # the message shows its place in line (rag.scheduler), not text yet
        self.interval = settings().stream_interval_ms / 1000
        self._held = ""  # the model's text not sent yet (it came within the interval)
        self._sent_at = 0.0
        self._timer: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def _send(self, token: str = "", is_sequence: bool = False) -> None:
        """The held text, then ``token`` (``is_sequence``: the whole message becomes it)."""
        async with self._lock:
            held, self._held = self._held, ""
            if not is_sequence:
                token = held + token
            if token:
                await self.msg.stream_token(token, is_sequence=is_sequence)
            elif is_sequence:  # Chainlit's stream_token ignores an empty one
                self.msg.content = ""
                await cl.context.emitter.send_token(id=self.msg.id, token="", is_sequence=True)
            else:
                return
            self._sent_at = time.monotonic()

    async def _later(self) -> None:
        await asyncio.sleep(max(0.0, self._sent_at + self.interval - time.monotonic()))
        try:
            await self._send()
        except Exception as exc:  # the page went: the answer's own next write says so
            log.debug("a held piece was not sent: %s", exc)

    async def _say(self, text: str) -> None:
        piece = self.neutraliser.feed(text)
        if not piece:
            return
        if not self._held and time.monotonic() - self._sent_at >= self.interval:
            await self._send(piece)
            return
        self._held += piece
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._later())

    async def _flush(self) -> None:
        await self._send(self.neutraliser.flush())

    def _rewrite(self, after_head: str) -> None:
        """The message becomes the head and ``after_head`` (neutralised afresh)."""
        self.neutraliser = Neutraliser()
        self._held = ""
        self.msg.content = self.head + self.neutraliser.feed(after_head)

    async def _append(self, block: str) -> None:
        """A paragraph after the answer; closes a code block the model left open (it would swallow it)."""
        await self._flush()
        if self.msg.content.count("```") % 2:
            await self._say("\n```")
        await self._say(("\n\n" if self.msg.content else "") + block)

    async def _replace(self, content: str) -> None:
        """The streamed message becomes ``content``."""
        await self._flush()
        self.neutraliser = Neutraliser()
        await self._send(content, is_sequence=True)

    async def start(self) -> None:
        await self._send(self.head)

    async def _head(self, block: str) -> None:
        """A block that stays above the model's text (Revised rewrites only what follows it)."""
        await self._flush()
        block = neutralise(block)
        self.head += block
        await self._send(block)

    async def show(self, ev) -> None:
        msg = self.msg
        if not isinstance(ev, pl.Queued):  # its turn came: the place line goes
            await self.drop_place()
        if isinstance(ev, pl.Queued):  # shown under the head, replaced as it moves
            self.waiting = True
            await self._replace(self.head + f"*⏳ {ev.text}*")
        elif isinstance(ev, (pl.NothingFound, pl.Notice)):
            note = ev.message if isinstance(ev, pl.NothingFound) else ev.text
            if msg.content:  # said about the answer being written: it belongs under it
                self.notes.append(f"*{note}*")
            else:
                await cl.Message(content=neutralise(f"*{note}*")).send()
        elif isinstance(ev, pl.Quoted):
            await self._head(quote_text(ev) + "\n\n")
        elif isinstance(ev, pl.Routed):
            await self._head(f"*↪ {ev.text}*\n\n")
        elif isinstance(ev, pl.FellBack):
            partial = "\n".join(f"> {line}" for line in ev.partial.strip().splitlines())
            await self._flush()
            if msg.content.count("```") % 2:
                await self._say("\n```")
            self._rewrite(f"*⚠️ Interrupted — {ev.reason}. Its partial answer, kept:*\n{partial}\n\n")
            self.head = msg.content
            await msg.update()
        elif isinstance(ev, pl.Token):
            await self._say(ev.text)
        elif isinstance(ev, pl.Revised):
            self._rewrite(ev.text)
        elif isinstance(ev, pl.Sources):
            if self.notes:
                await self._append("\n".join(self.notes))
            if ev.shown:
                msg.elements, names = await source_elements(ev)
                await self._append(f"**Sources:** {names}")
        elif isinstance(ev, pl.Done):
            self.text = ev.text
            await self._append(footer(ev))
        elif isinstance(ev, pl.Failed):
            await self._append(failure_text(ev))

    async def drop_place(self) -> None:
        """The place line goes (its turn came, or another view took over: a comparison's sides)."""
        if self.waiting:
            self.waiting = False
            await self._replace(self.head)

    async def close(self) -> None:
        await self.drop_place()
        await self._flush()
        if self.msg.content or self.msg.elements:
            await self.msg.send()
            if self.msg.elements:
                side = cl.user_session.get("side_elements") or []
                cl.user_session.set("side_elements", side + [e.to_dict() for e in self.msg.elements])


async def retire_sources() -> None:
    """Before a new answer: the previous answers' sources leave the page (Chainlit's page opens its side
    view with every "side" element of the chat, and every message is matched against every element's
    name). The chat history keeps them: a chat reopened from the sidebar links them again."""
    for element in cl.user_session.get("side_elements") or []:
        await cl.context.emitter.emit("remove_element", {"id": element["id"]})
    cl.user_session.set("side_elements", [])


async def show_retrieval(ev: pl.Retrieved) -> None:
    async with cl.Step(name="Retrieval", type="retrieval", language="text", show_input="text") as step:
        step.input = code_text(ev.query)  # a follow-up shows the query built from the conversation
        step.output = retrieval_text(ev)
