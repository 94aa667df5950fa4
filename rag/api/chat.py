"""``POST /v1/chat/completions`` over ``rag.pipeline.answer``.

The last user message is the question; the user and assistant messages before it are the history
(system, developer and tool messages are ignored: the pipeline writes its own system prompt). What
this server added to its earlier answers (the "From your documents:" heading, italic notes, the
Sources block) is taken out of assistant messages before they become history.

Streaming: the HTTP response starts with the model's first token (or with the end of an answer that
has none: nothing found, a stop string in the quote). So every failure before the model speaks is an
ordinary HTTP error with its status (unknown model 404, prompt too long 400, engine down 503...), and
the quote, which comes first, travels in the first chunks with the first token. A failure after that
is sent as ``data: {"error": {...}}`` followed by ``data: [DONE]``.

Waiting (rag.scheduler: the engine's fair queue, lane "api"; the user is the API key's, else the body's
``user`` field, else the client's address): the response starts as soon as the answer will wait (on its
arrival, before its retrieval: rag.scheduler ``counted``), with headers
``X-Queue-Position`` and ``X-Queue-Wait`` (seconds; empty before any answer was measured), and the place
travels as SSE comment lines (``: 2nd in line — about 8 s``, which OpenAI clients ignore) until the model
speaks; an error after that is an error event. A full line, or a user beyond LRC_RATE_PER_MINUTE questions a
minute, is 429 ``rate_limit_exceeded`` with Retry-After (checked on arrival, before any work).

``stop``: the text is cut before the first stop string (the whole text the client receives, quote and
Sources block included), the generation is cancelled, and finish_reason is "stop".
``max_tokens`` / ``max_completion_tokens``: the answer's token limit; the pipeline's floor is 16 tokens.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import AsyncIterator

import anyio

from engines.base import EngineError
from rag import pipeline
from rag.answering import answer_limit
from rag import prompt as prompt_mod
from rag.api import render
from rag.api.errors import APIError, from_category, from_exception, internal
from rag.api.schemas import ChatRequest
from rag.events import Queued

STREAM_MEDIA_TYPE = "text/event-stream"
MAX_STOPS = 4
# each piece of the answer is searched for every stop string, and as much text as the longest one held
# back: a megabyte stop made every piece cost a megabyte
MAX_STOP_CHARS = 1000


# ------------------------------------------------------------------------------------ the request
def _text(content, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise APIError(400, f"Invalid content part '{where}.content[{i}]' (type {kind!r}): only text "
                                    "parts ({\"type\": \"text\", \"text\": ...}) are supported.",
                               code="invalid_value", param=f"{where}.content[{i}]")
        return "\n".join(parts)
    raise APIError(400, f"Invalid value for '{where}.content': a string or a list of text parts.",
                   code="invalid_value", param=f"{where}.content")


SOURCES_HEAD = "**Sources:**\n"
_SOURCE_LINE = re.compile(r"\[\d+\] ")  # a line of the Sources block starts "[n] "
_NOTE = re.compile(r"\*[^*\n][^\n]*\*\n?")  # an italic note: one line "*...*"


def _own_block(block: str) -> bool:
    """A block this server added: its Sources block (the heading, then lines that each start "[n] ")
    or an italic note. Read line by line, never by a regex that could backtrack: a client sends the
    history, and "[1] [1] [1] ..." in one line once made a nested pattern try every split of it."""
    if _NOTE.fullmatch(block):
        return True
    if not block.startswith(SOURCES_HEAD):
        return False
    rest = block[len(SOURCES_HEAD):]
    return _source_lines(rest) or (rest.endswith("\n") and _source_lines(rest[:-1]))


def _source_lines(text: str) -> bool:
    """``text`` is nothing, or lines that each start "[n] " (the last one may end with a newline)."""
    if not text:
        return True
    text = text[:-1] if text.endswith("\n") else text
    return all(_SOURCE_LINE.match(line) for line in text.split("\n"))


def _without_decorations(text: str) -> str:
    """An earlier answer of this server as the chat keeps it (quote + answer): without the quote's
    heading, the italic notes and the Sources block."""
    blocks = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if _own_block(block):
            continue
        if block.startswith(render.QUOTE_HEAD + "\n"):
            block = block[len(render.QUOTE_HEAD) + 1:]
        blocks.append(block)
    return "\n\n".join(b for b in blocks if b.strip())


def conversation(req: ChatRequest) -> tuple[str, list[dict]]:
    """(question, history) from the request's messages."""
    texts = [_text(m.content, f"messages[{i}]") for i, m in enumerate(req.messages)]
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if not users:
        raise APIError(400, "'messages' holds no user message: the last user message is the question.",
                       code="invalid_value", param="messages")
    last = users[-1]
    question = texts[last].strip()
    if not question:
        raise APIError(400, f"The question (messages[{last}], the last user message) is empty.",
                       code="invalid_value", param=f"messages[{last}].content")
    history = []
    for m, text in zip(req.messages[:last], texts[:last]):
        if m.role == "assistant":
            text = _without_decorations(text)
        if m.role in ("user", "assistant") and text.strip():
            history.append({"role": m.role, "content": text})
    return question, history


def stops(req: ChatRequest) -> list[str]:
    stop = req.stop
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > MAX_STOPS:
        raise APIError(400, f"Invalid value for 'stop': a string or a list of up to {MAX_STOPS} strings.",
                       code="invalid_value", param="stop")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        raise APIError(400, f"Invalid value for 'stop': each stop string is at most {MAX_STOP_CHARS} characters.",
                       code="invalid_value", param="stop")
    return [s for s in stop if s]


def options(req: ChatRequest, target, user: str | None = None, address: str | None = None) -> pipeline.Options:
    """The pipeline's options for this request; ``user`` (LRC_AUTH=password: the API key's user)
    keeps other users' uploads out of the search. Who waits in the engine's line without one: the body's
    ``user`` field, else the client's ``address``."""
    if req.n is not None and req.n > 1:
        raise APIError(400, "Only one choice per request is supported ('n' must be 1).", code="invalid_value",
                       param="n")
    named = (req.model_extra or {}).get("user")
    client = f"user:{named[:200]}" if isinstance(named, str) and named.strip() else f"address:{address or ''}"
    return pipeline.Options(user=user, client=client, lane="api").updated({"engine": target.engine, "model": target.model,
                                                "temperature": req.temperature,
                                                "max_new_tokens": req.max_completion_tokens or req.max_tokens})


async def check_fits(question: str, opts: pipeline.Options) -> None:
    """A question longer than the model's context is refused at once (400 context_length_exceeded,
    with the pipeline's own message), before retrieval: the pipeline would only find out when it
    builds the prompt, and not at all when the documents hold nothing about such a question.
    A short question (at most 4 tokens a character) is not counted."""
    if opts.engine == pipeline.AUTO:
        return  # each routing target has its own context; the pipeline checks them
    eng = pipeline.engine(opts.engine)
    model = opts.model or None
    try:
        context_length = opts.context_length or await eng.context_length(model)
        limit = await answer_limit(eng, model, opts)
        room = context_length - prompt_mod.answer_tokens(context_length, limit)
        if 4 * len(question) + 500 < room:
            return
        await prompt_mod.fit(question, [], [], counter=lambda m: eng.count_tokens(m, model=model),
                             context_length=context_length, max_new_tokens=limit)
    except EngineError as err:
        raise from_exception(err) from None


# ------------------------------------------------------------------------------------ one answer
class ChatRun:
    """One answer: the pipeline's events folded into text, cut at a stop string."""

    def __init__(self, question: str, history: list, opts: pipeline.Options, stop: list[str], streaming: bool,
                 model: str, include_usage: bool = False):
        self.control = pipeline.Control()
        self.transcript = render.Transcript(streaming)
        self.cutter = render.StopCutter(stop)
        self.stop = stop
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self._events = pipeline.answer(question, history, opts, self.control, lib=pipeline.library)
        self._closed = False
        self.queued: Queued | None = None  # the first place in line, when the answer waited

    def headers(self) -> dict:
        """The place in line when the stream started waiting (none when it did not wait)."""
        if self.queued is None:
            return {}
        eta = self.queued.eta_s
        return {"X-Queue-Position": str(self.queued.position), "X-Queue-Wait": "" if eta is None else f"{eta:.0f}"}

    async def texts(self) -> AsyncIterator[str | Queued]:
        """The text a streaming client receives, piece by piece (stop strings honoured), and the place in
        line while the answer waits (Queued, not text)."""
        async for ev in self._events:
            if isinstance(ev, Queued):
                self.queued = self.queued or ev
                yield ev
                continue
            piece = self.cutter.feed(self.transcript.feed(ev))
            if self.cutter.hit and not self.control.cancelled:
                await self.control.cancel()  # the rest is not wanted; the checks and sources still come
            if piece:
                yield piece
            if self.transcript.failed is not None:
                return
        tail = self.cutter.flush()
        if tail:
            yield tail

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):  # also when the client went away (the task is cancelled)
            await self.control.cancel()
            await self._events.aclose()

    # ---------------------------------------------------------------- results
    @property
    def stopped(self) -> bool:
        return self.cutter.hit

    def finish_reason(self) -> str:
        if self.stopped:
            return "stop"
        done, revised = self.transcript.done, self.transcript.revised
        if (done and done.usage.finish_reason == "length") or (revised and revised.cut):
            return "length"
        return "stop"

    def usage(self) -> dict:
        done = self.transcript.done
        prompt = done.usage.prompt_tokens if done else 0
        completion = done.usage.completion_tokens if done else 0
        if not completion and self.transcript.tokens:  # cancelled (a stop string): pieces generated
            completion = self.transcript.tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def error(self) -> APIError | None:
        failed = self.transcript.failed
        return from_category(failed.category, failed.text, failed.retry_after) if failed is not None else None

    async def complete(self) -> dict:
        """The whole answer as a ``chat.completion`` object (raises APIError on a failure)."""
        try:
            async for _ in self.texts():
                pass
        finally:
            await self.close()
        if (err := self.error()) is not None:
            raise err
        self.transcript.quote_sources()
        content, _ = render.cut_at_stop(self.transcript.content(), self.stop)
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                             "logprobs": None, "finish_reason": self.finish_reason()}],
                "usage": self.usage(), "sources": self.transcript.sources, "system_fingerprint": None}

    # ---------------------------------------------------------------- streaming
    def _chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "system_fingerprint": None,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return _sse(chunk)

    async def start(self) -> AsyncIterator[str]:
        """Runs the answer up to the model's first text, its end, or its first place in line, and returns
        the SSE stream; a failure before then is raised as APIError (the caller answers with its HTTP status)."""
        pieces = self.texts()
        ahead: list[str | Queued] = []
        more = True
        try:
            while not self.transcript.started and self.queued is None:
                try:
                    ahead.append(await pieces.__anext__())
                except StopAsyncIteration:
                    more = False
                    break
        except BaseException:
            await pieces.aclose()
            await self.close()
            raise
        if (err := self.error()) is not None:
            await pieces.aclose()
            await self.close()
            raise err
        return self._stream(ahead, pieces if more else None)

    def _piece(self, piece: str | Queued) -> str:
        """A chunk of text, or the place in line as an SSE comment line."""
        return f": {piece.text}\n\n" if isinstance(piece, Queued) else self._chunk({"content": piece})

    async def _stream(self, ahead: list[str | Queued], pieces: AsyncIterator[str | Queued] | None) -> AsyncIterator[str]:
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            for piece in ahead:
                yield self._piece(piece)
            if pieces is not None:
                async for piece in pieces:
                    yield self._piece(piece)
            if (err := self.error()) is not None:
                yield _sse(err.body())
            else:
                self.transcript.quote_sources()
                yield self._chunk({}, self.finish_reason(), sources=self.transcript.sources)
                if self.include_usage:
                    yield _sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model, "system_fingerprint": None, "choices": [],
                                "usage": self.usage()})
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # after the stream started: an error event, then [DONE]
            yield _sse(internal(exc).body())
        finally:
            if pieces is not None:
                with anyio.CancelScope(shield=True):
                    await pieces.aclose()
            await self.close()
        yield "data: [DONE]\n\n"


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
