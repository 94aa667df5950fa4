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

from engines.base import EngineError
from rag import pipeline
from rag import prompt as prompt_mod
from rag.answering import Prepared, engine
from rag.browser import assets
from rag.config import settings
from rag.events import Failed, NothingFound, Notice, Quoted

ENGINE = "onnx"  # the page runs the in-process engine's model build: its tokenizer and context
MAX_QUESTION_CHARS = 4000


class ContextError(Exception):
    """The question cannot be prepared; ``status`` is the HTTP status, ``hint`` what to do."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


@dataclass
class Request:
    question: str
    user: str | None = None  # LRC_AUTH=password: whose uploads may be searched
    max_new_tokens: int | None = None  # None: the chat's setting


def _passage(hit) -> dict:
    chunk = hit.chunk
    return {"text": chunk.text, "file": chunk.name, "page": chunk.page, "heading": chunk.heading,
            "score": round(float(hit.score), 4)}


async def build(req: Request) -> dict:
    """{answerable, message, notes, quote, passages, messages, input_ids, max_new_tokens, repetition_penalty,
    eos, timings}; ``answerable`` False: the documents do not answer (the chat would not ask the model either).
    ``quote``: what the documents say, as the chat shows it before the model: [{text, citation}]."""
    question = (req.question or "").strip()
    if not question:
        raise ContextError(400, "The question is empty.", "Type a question about your documents.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ContextError(400, f"The question is longer than {MAX_QUESTION_CHARS} characters.", "Shorten it.")
    path, problem = await asyncio.to_thread(assets.locate_model)  # file checks: off the event loop
    if problem:
        raise ContextError(503, problem.message, problem.hint)
    folder = str(path)
    max_new = req.max_new_tokens or settings().max_new_tokens
    opts = pipeline.Options(engine=ENGINE, model=folder, style="quote+answer", user=req.user,
                            max_new_tokens=max_new).normalised()
    prep = Prepared(question, [], "")
    t0 = time.perf_counter()
    notes: list[str] = []
    nothing: NothingFound | None = None
    quote: list[dict] = []
    async for event in pipeline.prepare(prep, opts):
        if isinstance(event, Failed):
            raise ContextError(503, event.error, event.hint)
        if isinstance(event, Notice):
            notes.append(event.text)
        elif isinstance(event, NothingFound):
            nothing = event
        elif isinstance(event, Quoted):
            quote = [{"text": text, "citation": hit.chunk.citation()} for text, hit in event.quotes]
    retrieval = time.perf_counter() - t0
    result = {"question": question, "query": prep.query, "answerable": not prep.finished,
              "message": nothing.message if nothing else "", "notes": notes, "quote": quote,
              "passages": [_passage(h) for h in (prep.passages or prep.hits)],
              "retrieved": [_passage(h) for h in prep.hits]}
    if prep.finished:
        return result | {"timings": {"retrieval": round(retrieval, 3)}}

    eng = engine(ENGINE)

    async def counter(messages) -> int:
        return await eng.count_tokens(messages, model=folder)

    t1 = time.perf_counter()
    try:
        context_length = await eng.context_length(folder)
        fitted = await prompt_mod.fit(prep.question, prep.history, prep.passages, counter=counter,
                                      context_length=context_length, max_new_tokens=opts.max_new_tokens)
        ids = await eng.encode(fitted.prompt.messages, model=folder)
    except EngineError as exc:
        raise ContextError(503, exc.message, exc.hint) from None
    notes += [n[:1].upper() + n[1:] + "." for n in fitted.prompt.notes]
    config = await asyncio.to_thread(assets.model_config, path)
    return result | {
        "passages": [_passage(h) for h in fitted.prompt.hits],
        "messages": fitted.prompt.messages, "input_ids": ids, "max_new_tokens": fitted.max_new_tokens,
        "repetition_penalty": opts.repetition_penalty, "eos": config["eos"], "notes": notes,
        "timings": {"retrieval": round(retrieval, 3), "prompt": round(time.perf_counter() - t1, 3)}}
