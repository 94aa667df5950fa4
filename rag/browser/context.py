"""A question -> what the page's model reads: the pipeline's retrieval and prompt, as token ids.

The same steps as a chat answer up to the model (``rag.pipeline.prepare``: retrieval with the asker's
scope, the evidence step that decides whether the documents answer and picks the sentences the model
reads; then ``rag.prompt.fit`` for the in-process engine's context and tokenizer), so the prompt is the
pipeline's prompt. The in-process engine's worker applies the chat template and tokenizes
(``OnnxGenaiEngine.encode``): the page feeds exactly the ids the in-process engine would.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from engines import registry
from engines.base import EngineError
from rag import pipeline
from rag import prompt as prompt_mod
from rag.answer.check import check as check_answer, render
from rag.answer.guard import finish, tidy_fences
from rag.answering import Prepared, answer_limit, engine
from rag.api.errors import status_of
from rag.browser import assets
from rag.config import settings
from rag.events import Failed, NothingFound, Notice, Quoted, Retrieved

ENGINE = registry.IN_PROCESS  # the page runs the in-process engine's model build: its tokenizer and context
MAX_QUESTION_CHARS = 4000
# an answer to check: the page's model writes at most its context (8,192 tokens, some 30,000 characters);
# every sentence of it is embedded, so a longer text would only be CPU work a client asked for
MAX_ANSWER_CHARS = 100_000


def context_tokens() -> int:
    """Passage text the page's model reads: half the chat's (LRC_CONTEXT_TOKENS), as before the chat's model
    ran on every core; WebAssembly in the browser reads a prompt several times slower."""
    return max(50, settings().context_tokens // 2)


class ContextError(Exception):
    """The question cannot be prepared; ``status`` is the HTTP status, ``hint`` what to do."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


@dataclass
class PageQuestion:
    question: str
    user: str | None = None  # LRC_AUTH=password: whose uploads may be searched
    max_new_tokens: int | None = None  # None: the chat's setting


def _passage(hit) -> dict:
    chunk = hit.chunk
    return {"text": chunk.text, "file": chunk.name, "page": chunk.page, "heading": chunk.heading,
            "score": round(float(hit.score), 4)}


@dataclass
class _Prepared:
    """A question taken through the pipeline's steps before the model (``pipeline.prepare``)."""
    question: str
    query: str  # what retrieval searched with
    hits: tuple  # retrieved
    prep: Prepared | None  # None: the documents do not answer (the chat would not ask the model either)
    opts: pipeline.Options
    path: Path  # the browser model's folder
    notes: list[str]
    nothing: NothingFound | None
    quote: list[dict]
    seconds: float


async def _prepare(req: PageQuestion) -> _Prepared:
    question = (req.question or "").strip()
    if not question:
        raise ContextError(400, "The question is empty.", "Type a question about your documents.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ContextError(400, f"The question is longer than {MAX_QUESTION_CHARS} characters.", "Shorten it.")
    path, problem = await asyncio.to_thread(assets.locate_model)  # file checks: off the event loop
    if problem:
        raise ContextError(503, problem.message, problem.hint)
    max_new = req.max_new_tokens or settings().max_new_tokens
    opts = pipeline.Options(engine=ENGINE, model=str(path), style="quote+answer", user=req.user,
                            max_new_tokens=max_new).normalised()
    t0 = time.perf_counter()
    notes: list[str] = []
    nothing: NothingFound | None = None
    quote: list[dict] = []
    prep, query, hits = None, question, ()
    async for event in pipeline.prepare(question, [], opts, lib=pipeline.library, context_tokens=context_tokens()):
        if isinstance(event, Prepared):
            prep = event
        elif isinstance(event, Retrieved):
            query, hits = event.query, tuple(event.hits)
        elif isinstance(event, Failed):
            raise ContextError(status_of(event.category), event.error, event.hint)
        if isinstance(event, Notice):
            notes.append(event.text)
        elif isinstance(event, NothingFound):
            nothing = event
        elif isinstance(event, Quoted):
            quote = [{"text": text, "citation": hit.chunk.citation()} for text, hit in event.quotes]
    return _Prepared(question, query, hits, prep, opts, path, notes, nothing, quote, time.perf_counter() - t0)


async def _fit(ready: _Prepared):
    """The pipeline's prompt for the in-process engine's context and tokenizer (``rag.prompt.fit``)."""
    eng, folder = engine(ENGINE), str(ready.path)

    async def counter(messages) -> int:
        return await eng.count_tokens(messages, model=folder)

    try:
        context_length = await eng.context_length(folder)
        return await prompt_mod.fit(ready.prep.question, ready.prep.history, ready.prep.passages, counter=counter,
                                    context_length=context_length,
                                    max_new_tokens=await answer_limit(eng, folder, ready.opts))
    except EngineError as exc:
        raise ContextError(503, exc.message, exc.hint) from None


async def build(req: PageQuestion) -> dict:
    """{answerable, message, notes, quote, passages, messages, input_ids, max_new_tokens, repetition_penalty,
    eos, timings}; ``answerable`` False: the documents do not answer (the chat would not ask the model either).
    ``quote``: what the documents say, as the chat shows it before the model: [{text, citation}]."""
    ready = await _prepare(req)
    result = {"question": ready.question, "query": ready.query, "answerable": ready.prep is not None,
              "message": ready.nothing.message if ready.nothing else "", "notes": ready.notes, "quote": ready.quote,
              "passages": [_passage(h) for h in ((ready.prep.passages if ready.prep else ()) or ready.hits)],
              "retrieved": [_passage(h) for h in ready.hits]}
    if ready.prep is None:
        return result | {"timings": {"retrieval": round(ready.seconds, 3)}}
    t1 = time.perf_counter()
    fitted = await _fit(ready)
    try:
        ids = await engine(ENGINE).encode(fitted.prompt.messages, model=str(ready.path))
    except EngineError as exc:
        raise ContextError(503, exc.message, exc.hint) from None
    notes = ready.notes + [n[:1].upper() + n[1:] + "." for n in fitted.prompt.notes]
    config = await asyncio.to_thread(assets.model_config, ready.path)
    return result | {
        "passages": [_passage(h) for h in fitted.prompt.hits],
        "messages": fitted.prompt.messages, "input_ids": ids, "max_new_tokens": fitted.max_new_tokens,
        "repetition_penalty": ready.opts.repetition_penalty, "eos": config["eos"], "notes": notes,
        "timings": {"retrieval": round(ready.seconds, 3), "prompt": round(time.perf_counter() - t1, 3)}}


async def check(req: PageQuestion, answer: str, cut: bool = False) -> dict:
    """The chat's check of the page's answer: the same passages (the question prepared again), each
    sentence checked against them (``rag.answer.check``) -> {text (rendered as the chat shows it: ⚠️ after
    each unsupported sentence, then what the mark means), unsupported: [sentences], judged: n}.
    ``cut``: the length limit ended the answer (its last words may be half a word)."""
    if not isinstance(answer, str) or not answer.strip():
        raise ContextError(400, "The answer to check is empty.")
    if len(answer) > MAX_ANSWER_CHARS:
        raise ContextError(400, f"The answer to check is longer than {MAX_ANSWER_CHARS:,} characters.",
                           "Check the answer the page's model wrote, not a longer text.")
    ready = await _prepare(req)
    if ready.prep is None:
        raise ContextError(409, "Your documents do not answer this question, so there is no answer to check.")
    fitted = await _fit(ready)
    prep = ready.prep
    # the client's text is read off the event loop: tidied, ended at a sentence, checked and rendered (a length
    # the page's user did not choose, the model's own, ends it at its last full sentence: ``whole``)
    return await asyncio.to_thread(_checked, prep.embedder, answer, cut, cut and not req.max_new_tokens,
                                   fitted.prompt.hits, prep.query, list(prep.quoted))


def _checked(embedder, answer: str, cut: bool, whole: bool, hits, query: str, quoted) -> dict:
    sentences = check_answer(embedder, finish(tidy_fences(answer), cut=cut, whole=whole), hits, query, quoted)
    judged = [c for c in sentences if c.judged and not c.repeats]
    return {"text": render(sentences), "unsupported": [c.text for c in judged if not c.supported],
            "judged": len(judged)}
