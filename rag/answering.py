"""Steps 3-4 of an answer: the model writes from the prepared passages, then its text is checked.
``rag.pipeline.respond`` calls :func:`generate` + :func:`finish_answer` for one engine, or
:func:`routed` for the "auto" engine (the routing rules, ``rag.routing.rules``).

Routing: the targets are tried in the rules' order. A target is passed over, with its reason, when
its engine or model cannot be used, when the whole prompt (counted with that model's tokenizer) plus
the answer's share does not fit its context (not for the last target, which fits by dropping
passages as usual), when it fails before its first token, or when that first token misses its
deadline. To keep a miss cheap, the next target is started ``PRESTART_S`` before the deadline (its
pieces wait in a buffer): if the first target still has not spoken at its deadline, the next one has
already read its prompt; if it has, the spare is cancelled. ``Routed`` announces the target that
answers, before its first ``Token``; a target failing after it streamed text leaves ``FellBack``
(its partial answer) and the next target answers in full.

Waiting: ``generate`` takes its place in the engine's fair queue (rag.scheduler) once the prompt is
built, yielding ``Queued`` while it waits; the quote and everything before it never wait there. A
comparison's (or routed answer's) second generation on the same engine shares the first's place.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

from engines import registry
from engines.base import (Engine, EngineError, EngineUnavailable, ErrorCategory, GenerationOptions, Message,
                          PromptTooLong)
from rag import prompt as prompt_mod, scheduler
from rag.answer.check import NOTHING_ADDED, check as check_answer, citation_numbers, render
from rag.answer.guard import LoopGuard, finish, tidy_fences
from rag.config import settings
from rag.events import Done, Event, Failed, FellBack, NothingFound, Notice, Revised, Routed, Sources, Token
from rag.schema import Hit

if TYPE_CHECKING:
    from rag.embedder import Embedder  # imported late at run time: it pulls in torch

PRESTART_S = 1.5  # the next routing target starts this long before the current one's deadline


class Control:
    """Lets another task stop a running answer (the CLI's Ctrl-C, a test, the chat's stop button).
    A comparison or a routed answer runs more than one generation: cancelling stops them all, and takes
    the answers still waiting for their engine out of its queue."""

    def __init__(self) -> None:
        self.generations: list = []
        self.tickets: list = []  # rag.scheduler tickets of its generations
        self.cancelled = False

    @property
    def generation(self):
        return self.generations[-1] if self.generations else None

    @generation.setter
    def generation(self, generation) -> None:
        self.generations.append(generation)

    async def cancel(self) -> None:
        self.cancelled = True
        for ticket in list(self.tickets):
            if not ticket.granted:  # still waiting: out of the line now (a running one ends with its generation)
                ticket.release()
        for generation in list(self.generations):
            await generation.cancel()


@dataclass(frozen=True)
class Prepared:
    """What retrieval and the evidence step leave for the model: ``rag.pipeline.prepare`` yields it as its
    last item when the model should answer (both sides of a comparison share it; nobody changes it)."""

    question: str
    history: tuple[Message, ...]
    query: str  # what retrieval searched with (a follow-up: built from the conversation)
    embedder: "Embedder | None" = None  # checks the answer against the passages; None: there are none
    hits: tuple[Hit, ...] = ()  # retrieved
    passages: tuple[Hit, ...] = ()  # what the model reads (best sentences + neighbours)
    quote: str = ""  # the quote shown before the model's answer, as plain text
    quoted: tuple[str, ...] = ()
    timings: dict = field(default_factory=dict)  # seconds so far: retrieval, first_text
    t0: float = field(default_factory=time.perf_counter)  # when the question came


def engine(name: str) -> Engine:
    """The process-wide engine ``name``, created on first use with its settings."""
    return registry.get(name, settings().engine_config(name))


def engine_short(name: str) -> str:
    """An engine's label without its detail in brackets: "In-process", "Foundry Local"."""
    return registry.labels().get(name, name).split(" (")[0]


def cited(text: str, hits: Sequence[Hit]) -> list[Hit]:
    """Hits referenced as [n] (also [1, 2]) in the answer, in order of first citation."""
    order = dict.fromkeys(n for n in citation_numbers(text) if 1 <= n <= len(hits))
    return [hits[n - 1] for n in order]


async def model_label(engine: Any, model: str | None) -> str:
    """The model's id as the engine knows it (the engine's default when ``model`` is empty)."""
    try:
        return await engine.resolve_model(model)
    except Exception:  # a label is not worth failing an answer for
        pass
    return model or "default"


def routing_rules():
    """The "auto" engine's rules from ``settings().routing_file`` (raises RulesError naming the line)."""
    from rag.routing.rules import load

    return load(settings().routing_file, registry.ENGINES)


# ------------------------------------------------------------------------------------ one engine
@dataclass(frozen=True)
class Generated:
    """What a generation made: its text, prompt, Generation (usage), loop guard and its own timings
    (prompt, generation: seconds)."""

    text: str = ""
    prompt: Any = None
    generation: Any = None
    guard: LoopGuard = field(default_factory=LoopGuard)
    timings: dict = field(default_factory=dict)
    chosen_limit: bool = True  # the answer's length limit was chosen (False: the model's own length)


async def answer_limit(eng: Engine, model: str | None, opts) -> int:
    """The answer's limit in tokens: the one chosen (``opts.max_new_tokens``), else the model's own length."""
    return opts.max_new_tokens or prompt_mod.default_answer_tokens(await model_label(eng, model))


async def generate(eng: Engine, model: str | None, prep: Prepared, opts, control: Control, *,
                   context_length: int | None = None) -> AsyncIterator[Event | Generated]:
    """Prompt + streamed generation (``opts``: the pipeline's Options), with one retry if the engine
    says the prompt is too long; stops the engine when the answer starts to loop. Before the engine
    streams, the answer waits for its turn (rag.scheduler: ``Queued`` events; a full line raises
    QueueFull, category BUSY). Yields its events, then what it made (a :class:`Generated`, last);
    raises EngineError."""
    async def counter(messages: list[Message]) -> int:
        return await eng.count_tokens(messages, model=model)

    context_length = context_length or opts.context_length
    max_new_tokens = await answer_limit(eng, model, opts)
    fitted = generation = ticket = None
    own = False  # the ticket is this generation's own (else it shares another's)
    text, guard, timings = "", LoopGuard(), {"prompt": 0.0}
    try:
        for attempt in (1, 2):
            try:
                t = time.perf_counter()
                if context_length is None:
                    context_length = await eng.context_length(model)
                fitted = await prompt_mod.fit(prep.question, prep.history, prep.passages, counter=counter,
                                              context_length=context_length, max_new_tokens=max_new_tokens)
                timings["prompt"] += time.perf_counter() - t
                if attempt == 1:
                    for note in fitted.prompt.notes:
                        yield Notice(note.capitalize() + ".")
                    if prep.passages and not fitted.prompt.grounded:
                        yield NothingFound("no-room", "No passage fits the model's context next to this question: "
                                                      "this answer does not use your documents.", True)
                if ticket is None and not control.cancelled:  # its turn on the engine (rag.scheduler)
                    # a comparison's (or a routed answer's) second generation on this engine shares the first's
                    # place: one question is one place in line, and both sides still stream at once
                    ticket = next((t for t in control.tickets if t.engine == eng.name and not t.left), None)
                    own = ticket is None
                    if own:
                        ticket = scheduler.enter(eng.name, opts.user or opts.client, opts.lane)
                        control.tickets.append(ticket)
                    async for queued in ticket.wait():
                        yield queued
                if control.cancelled:
                    break
                gen_opts = GenerationOptions(max_new_tokens=fitted.max_new_tokens, temperature=opts.temperature,
                                             repetition_penalty=opts.repetition_penalty)
                control.generation = generation = eng.stream(fitted.prompt.messages, gen_opts, model=model)
                t = time.perf_counter()
                try:
                    async for piece in generation:
                        if not piece:
                            continue
                        text += piece
                        yield Token(piece)
                        if guard.feed(piece):
                            break
                finally:
                    if generation.usage.finish_reason is None or control.cancelled or guard.looped:
                        await generation.cancel()  # a loop, or our consumer went away (stop, a passed-over target)
                timings["generation"] = time.perf_counter() - t
                break
            except PromptTooLong as err:
                if attempt == 2 or text or fitted is None:
                    raise
                context_length, max_new_tokens = prompt_mod.refit(err, fitted)
                yield Notice("The prompt was too long for the model; retried with fewer passages.")
    finally:  # the slot is free before the checks run (the answer's time counts when it ended on its own)
        if ticket is not None and own:
            ticket.release(measured=generation is not None and not control.cancelled
                           and generation.usage.finish_reason in ("stop", "length"))
    yield Generated(text, fitted.prompt if fitted else None, generation, guard, timings, bool(opts.max_new_tokens))


async def finish_answer(prep: Prepared, control: Control, eng: Engine, model: str | None,
                        made: Generated) -> AsyncIterator[Event]:
    """Step 4: loops cut, ended at a sentence, each sentence checked against the passages; sources. The
    Done's timings: the retrieval's (``prep``) and those of the generation that answered (``made``)."""
    if control.cancelled and not made.text or made.generation is None:
        return
    used = made.prompt.hits if made.prompt else []
    looped, cut = made.guard.looped, made.generation.usage.finish_reason == "length"
    text = finish(tidy_fences(made.guard.kept if looped else made.text), cut=cut, whole=cut and not made.chosen_limit)
    revised = None
    if used and text.strip() and prep.embedder is not None:
        sentences = await asyncio.to_thread(check_answer, prep.embedder, text, used, prep.query, list(prep.quoted))
        text = render(sentences)
        revised = Revised(text, sentences, looped=looped, cut=cut)
    left_out = text == NOTHING_ADDED  # then how the model's text ended does not matter to the reader
    if looped and not left_out:
        yield Notice("The model started repeating itself and was stopped.")
    elif cut and made.chosen_limit and not left_out:  # (its own length: ends at a full sentence, unannounced)
        yield Notice("The answer reached the length limit ('Max answer tokens') and ends at its last full sentence.")
    if revised is not None:
        yield revised
    yield Sources(cited(text, used), list(used))
    timings = {**prep.timings, **made.timings, "total": time.perf_counter() - prep.t0}
    yield Done(made.generation.usage, eng.name, await model_label(eng, model), prep.quote, text, timings)


# ------------------------------------------------------------------------------------ routing ("auto")
_END = object()


class _Attempt:
    """One routing target answering in its own task; its events wait in a queue until it is chosen
    (or it is cancelled: passed over, or not needed)."""

    def __init__(self, target, name: str, why: str, eng: Engine, model: str | None, context_length: int,
                 prep: Prepared, opts, control: Control):
        self.target, self.name, self.why, self.eng, self.model = target, name, why, eng, model
        self.made: Generated | None = None  # what its generation made, once it ended
        self.text = ""  # its text so far (a failure mid-answer leaves it as the partial answer)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.spoke = asyncio.Event()  # first text, an error or the end
        self.started = time.perf_counter()
        self.task = asyncio.create_task(self._run(context_length, prep, opts, control))

    async def _run(self, context_length, prep, opts, control) -> None:
        try:
            async for event in generate(self.eng, self.model, prep, opts, control, context_length=context_length):
                if isinstance(event, Generated):
                    self.made = event
                    continue
                self.queue.put_nowait(event)
                if isinstance(event, Token):
                    self.text += event.text
                    self.spoke.set()
            self.queue.put_nowait(_END)
        except EngineError as err:
            self.queue.put_nowait(err)
        finally:
            self.spoke.set()

    async def wait(self, until: float) -> bool:
        """True once it spoke (text, an error or the end), False at ``until`` (perf_counter time)."""
        try:
            await asyncio.wait_for(self.spoke.wait(), max(until - time.perf_counter(), 0.0))
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def routed(rules, prep: Prepared, opts, control: Control) -> AsyncIterator[Event]:
    """The answer from the first target of ``rules`` that can give it (see the module docstring)."""
    full = await prompt_mod.build(prep.question, prep.history, prep.passages, context_length=1 << 30,
                                  max_new_tokens=0)
    order = iter(enumerate(await asyncio.to_thread(rules.order, prep.question, full.tokens)))  # reads the question
    count = len(rules.targets)
    why_not: list[str] = []  # what happened to the targets before the one that answers

    async def start_next() -> _Attempt | None:
        """The next target that can be used and fits the prompt, started; None when none is left."""
        for i, (target, why) in order:
            name = target.label
            try:
                eng = engine(target.engine)
                model = target.model or None
                name = f"{engine_short(target.engine)} {await eng.resolve_model(model)}"
                context_length = target.context_length or await eng.context_length(model)
                if i < count - 1:
                    need = await prompt_mod.build(prep.question, prep.history, prep.passages, context_length=1 << 30,
                                                  max_new_tokens=0,
                                                  counter=lambda m, e=eng, mo=model: e.count_tokens(m, model=mo))
                    limit = await answer_limit(eng, model, opts)
                    room = context_length - prompt_mod.answer_tokens(context_length, limit)
                    if need.tokens > room:
                        why_not.append(f"{name} context {context_length:,} < prompt {need.tokens:,} tokens "
                                       f"+ {context_length - room:,} for the answer")
                        continue
            except EngineError as err:
                what = "is not reachable" if isinstance(err, EngineUnavailable) else "cannot be used"
                why_not.append(f"{name} {what} ({err.message.rstrip('.')})")
                continue
            why = why or f"target {i + 1} in {rules.path.name if rules.path else 'the rules'}"
            return _Attempt(target, name, why, eng, model, context_length, prep, opts, control)
        return None

    current, spare = await start_next(), None
    try:
        while current is not None:
            deadline = current.started + rules.deadline(current.target)
            spoke = await current.wait(deadline - PRESTART_S)
            if not spoke and spare is None:  # the deadline is near: let the next target read its prompt now
                spare = await start_next()
            spoke = spoke or await current.wait(deadline)
            if not spoke:
                await current.stop()
                why_not.append(f"{current.name} missed its first-token deadline of {rules.deadline(current.target):g} s")
                current, spare = spare or await start_next(), None
                continue
            announced = False
            reason = "; ".join(why_not) or current.why
            failure = None
            while True:
                item = await current.queue.get()
                if item is _END:
                    break
                if isinstance(item, EngineError):
                    failure = item
                    break
                if isinstance(item, Token) and not announced:
                    announced = True
                    if spare is not None:  # it spoke in time: the spare is not needed
                        await spare.stop()
                        spare = None
                    yield Routed(current.target.engine, current.name, reason, time.perf_counter() - current.started)
                yield item
            if failure is None:
                if spare is not None:  # it ended without text: the spare is not needed either
                    await spare.stop()
                    spare = None
                if not announced:
                    yield Routed(current.target.engine, current.name, reason, time.perf_counter() - current.started)
                async for event in finish_answer(prep, control, current.eng, current.model, current.made):
                    yield event
                return
            message = failure.message.rstrip(".")
            if current.text:
                yield FellBack(current.text, f"{current.name} stopped after part of its answer ({message})")
                why_not.append(f"{current.name} stopped mid-answer ({message})")
            else:
                why_not.append(f"{current.name} failed: {message}")
            if control.cancelled:
                return
            current, spare = spare or await start_next(), None
    finally:
        for attempt in (current, spare):
            if attempt is not None:
                await attempt.stop()
    yield Failed("None of the routing targets could answer: " + "; ".join(why_not) + ".",
                 f"Start the services they need, or edit {rules.path or 'the routing rules'}.",
                 ErrorCategory.UNAVAILABLE)
