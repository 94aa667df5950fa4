"""The pipeline's events as the text an API client receives (what the chat user reads), in order:

    *notices*                       italic lines (a NothingFound or Notice event, a Routed reason)
    From your documents:            the quote (Quoted), before the model answers
    > sentence (file, p. N)
    the answer                      streamed: the model's tokens as they come; not streamed: the
                                    checked answer (Revised / Done.answer)
    *⚠️ not found in your documents (1 of 3 sentences)*    streamed only: what the check adds
    **Sources:**                    the passages the answer cites (else the ones it used)
    [1] file, p. N

Blocks are separated by a blank line. A streaming client cannot take back text it was sent, so it
gets the raw tokens and, at the end, only the check's note on unsupported sentences; a non-streamed
answer is the checked one (citations corrected, each unsupported sentence marked ⚠️).

Text from documents and models is Markdown a client may render: the content (quote, answer, notes,
Sources block), streamed or not, and each source's ``file`` and ``text`` are neutralised by rag.markup
(no image, raw HTML or link other than http(s)/mailto survives; an invisible WORD JOINER splits the
syntax, so the text reads the same). A stream holds back the few characters a decision waits for
and sends them with the answer's end. Stop strings are looked for as given and as neutralised.

``sources`` (machine-readable, on the response and on the last stream chunk): one
``{"index", "file", "page", "section", "ocr", "text", "score", "scores"}`` per source: ``index`` is the [n] the
answer cites, ``section`` the heading the passage is under ("" if none), ``ocr`` whether the passage was read
by OCR (a scan: its label says "(OCR)"), ``score`` the retrieval's ranking score (fused in hybrid mode:
relative to the other hits), ``scores`` the per-mode ones (e.g. ``dense``: the cosine similarity to the
question).
"""
from __future__ import annotations

from typing import Sequence

from rag.answer.check import MARK
from rag.events import (Done, Failed, FellBack, NothingFound, Notice, Quoted, Retrieved, Revised, Routed,
                        Sources, Token)
from rag.markup import Neutraliser, neutralise
from rag.schema import Hit

QUOTE_HEAD = "From your documents:"
SOURCES_HEAD = "**Sources:**"


def sources_field(shown: Sequence[Hit], used: Sequence[Hit]) -> list[dict]:
    out = []
    for i, hit in enumerate(shown, start=1):
        index = next((n for n, h in enumerate(used, start=1) if h is hit), i)
        out.append({"index": index, "file": neutralise(hit.chunk.name), "page": hit.chunk.page,
                    "section": neutralise(hit.chunk.heading), "ocr": hit.chunk.ocr,
                    "text": neutralise(hit.chunk.text),
                    "score": round(float(hit.score), 6),
                    "scores": {k: round(float(v), 6) for k, v in (hit.scores or {}).items()}})
    return out


def check_note(revised_text: str) -> str:
    """The line the answer check appends when sentences are not found in the documents ("" if none)."""
    i = revised_text.rfind(f"\n\n*{MARK} ")
    return revised_text[i + 2:] if i >= 0 else ""


def _italic(text: str) -> str:
    return f"*{text.strip()}*"


class Transcript:
    """Folds the pipeline's events into the response text. ``feed`` returns what a streaming client
    receives for that event (also used, when not streaming, to spot a stop string early);
    ``content()`` is the whole text (the checked answer when not streaming)."""

    def __init__(self, streaming: bool):
        self.streaming = streaming
        self.blocks: list[str] = []
        self.answer_block: int | None = None  # the block the current answer's tokens go to
        self.answering = False
        self.started = False  # the model produced text
        self.tokens = 0
        self.retrieved: list[Hit] = []
        self.quoted: list[Hit] = []
        self.sources: list[dict] = []
        self.sources_given = False
        self.revised: Revised | None = None
        self.done: Done | None = None
        self.failed: Failed | None = None
        self.neutraliser = Neutraliser()  # what a streaming client receives, in order

    def _block(self, text: str) -> str:
        if not text:
            return ""
        self.answering = False
        sep = "\n\n" if any(self.blocks) else ""
        self.blocks.append(text)
        return sep + text

    def feed(self, ev) -> str:
        out = self.neutraliser.feed(self._text(ev))
        if isinstance(ev, (Done, Failed)):  # the end: what was held back goes out
            out += self.neutraliser.flush()
        return out

    def _text(self, ev) -> str:
        """The event's text as the pipeline gave it (``feed`` neutralises it)."""
        if isinstance(ev, Token):
            self.started = True
            self.tokens += 1
            if not self.answering:
                sep = "\n\n" if any(self.blocks) else ""
                self.answer_block, self.answering = len(self.blocks), True
                self.blocks.append(ev.text)
                return sep + ev.text
            self.blocks[self.answer_block] += ev.text
            return ev.text
        if isinstance(ev, NothingFound):
            return self._block(_italic(ev.message))
        if isinstance(ev, Notice):
            return self._block(_italic(ev.text))
        if isinstance(ev, Retrieved):
            self.retrieved = list(ev.hits)
            return ""
        if isinstance(ev, Quoted):
            self.quoted = [h for i, (_, h) in enumerate(ev.quotes) if all(h is not o for _, o in ev.quotes[:i])]
            return self._block(f"{QUOTE_HEAD}\n{ev.text}")
        if isinstance(ev, Routed):
            return self._block(_italic(ev.text[:1].upper() + ev.text[1:] + "."))
        if isinstance(ev, FellBack):
            return self._block(_italic(f"{MARK} Interrupted: {ev.reason.rstrip('.')}. Another model answers below."))
        if isinstance(ev, Revised):
            self.revised = ev
            return self._block(check_note(ev.text)) if self.streaming else ""
        if isinstance(ev, Sources):
            shown = ev.shown
            self.sources, self.sources_given = sources_field(shown, ev.used), True
            if not shown:
                return ""
            lines = [f"[{s['index']}] {h.chunk.citation()}" for s, h in zip(self.sources, shown)]
            return self._block(SOURCES_HEAD + "\n" + "\n".join(lines))
        if isinstance(ev, Done):
            self.done = ev
        elif isinstance(ev, Failed):
            self.failed = ev
        return ""

    def quote_sources(self) -> None:
        """When the answer ended before its Sources event (a stop string in the quote cancelled the
        model): the passages the quote comes from, as an answer in quote style gives them."""
        if not self.sources_given and self.quoted:
            self.sources = sources_field(self.quoted, self.retrieved)

    def _checked_answer(self) -> str | None:
        if self.done is not None:
            return self.done.answer.strip()
        if self.revised is not None:
            return self.revised.text
        return None

    def content(self) -> str:
        blocks = list(self.blocks)
        if not self.streaming and self.answer_block is not None:
            checked = self._checked_answer()
            if checked is not None:
                blocks[self.answer_block] = checked
        return neutralise("\n\n".join(b for b in blocks if b.strip()))


class StopCutter:
    """Cuts a stream of text before the first of the stop strings, holding back only as much text
    as could be the start of one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = list(dict.fromkeys(x for s in stops if s for x in (s, neutralise(s))))  # the text is neutralised
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        if not self.stops:
            return text
        buf = self.held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit, self.held = True, ""
            return buf[:cut]
        n = len(buf) - self.keep
        if n <= 0:
            self.held = buf
            return ""
        self.held = buf[n:]
        return buf[:n]

    def flush(self) -> str:
        out, self.held = self.held, ""
        return "" if self.hit else out


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cutter = StopCutter(stops)
    out = cutter.feed(text)
    return out + cutter.flush(), cutter.hit
