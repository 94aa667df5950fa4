"""The one path from a question (or dropped files) to typed events; the chat, the CLI and the
benchmarks all consume it and only render what it yields.

    async for event in answer(question, history, Options(engine="onnx", top_k=4), lib=library):
        Retrieved -> [NothingFound] -> [Notice]* -> [Quoted] -> Token* -> [Revised] -> Sources -> Done
                                                                                      (or Failed)
    async for event in ingest(paths, lib=library):
        Progress* -> Ingested

An answer: a follow-up question retrieves with the conversation (rag.answer.followup); the passages'
best sentences are quoted first and decide whether the documents answer at all (rag.answer.evidence);
the model reads those sentences with their neighbours, not whole passages; its stream is stopped
when it loops (rag.answer.guard); each sentence is then checked against the passages (rag.answer.check).
``answer`` is ``prepare`` (retrieval, quote: steps 1-2) then ``respond`` (the model, the checks: steps
3-4); a comparison (rag.compare) runs ``prepare`` once and two ``respond`` at the same time. The engine
"auto" answers with the first target of the routing rules (rag.routing) that can: a ``Routed`` event
says which and why, a ``FellBack`` one marks a partial answer a failing target left.

Steps hand on values, never objects they change: ``prepare`` yields a ``Prepared`` last (none: the answer
ended), ``generate`` a ``Generated``; a Done's timings are composed from both. Retrieval and indexing run
in worker threads (retrieval and the quote LRC_RETRIEVAL_AT_ONCE at a time: ``scheduler.retrieval_turn``). The library is a required keyword ``lib`` of every function
that reads or changes it: a library, or how to open one (``library``: the shared one for the current
settings, ``Library.shared``, opened off the loop when needed: a database that is down is a Failed
event, and an answer with search off needs none). Generation goes through ``engine(options.engine)``
(the registry's instance for the engine's current settings). Engine and library errors become
:class:`Failed` events carrying the error's readable text and its category (``ErrorCategory``: what the
chat, the CLI and /v1 map, never a class name). Cancelling the consuming task (Chainlit's stop button)
or ``Control.cancel()`` cancels the running Generation.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable, Sequence

from engines import registry
from engines.base import EngineError, ErrorCategory, Message, Usage
from rag.answer import evidence
from rag.answer.followup import standalone_query
from rag.answering import (Control, Generated, Prepared, cited, engine, engine_short, finish_answer, generate,
                           model_label, routed, routing_rules)
from rag import catalog, owners, prompt as prompt_mod, scheduler
from rag.catalog import READ_ONLY, LibraryDocument, Removed, may_manage
from rag.config import settings
from rag.events import (Done, Event, Failed, FellBack, Ingested, NothingFound, Notice, Progress, Queued, Quoted,
                        Retrieved, Revised, Routed, Sources, Token)
from rag.jobs.here import IngestCancelled, ingest_beside_answers
from rag.schema import STYLES, Mode
from rag.store import StoreError
from rag.uploads import store_upload

if TYPE_CHECKING:
    from rag.library import Library  # imported late at run time: it pulls in torch

    LibrarySource = Library | Callable[[], Library]  # a library, or how to open it (``library``)

__all__ = ["AUTO", "Options", "Control", "Prepared", "answer", "prepare", "respond", "ingest", "ingest_uploads",
           "store_upload", "library", "opened", "warm_library", "warm_engine", "engine", "engine_short", "routing_rules", "cited", "model_label", "Done", "Event", "ErrorCategory", "Failed", "Ingested", "NothingFound", "Notice", "Progress",
           "Quoted", "Retrieved", "Revised", "Sources", "Token", "Routed", "FellBack", "Queued"]


# ------------------------------------------------------------------------------------ options
AUTO = "auto"  # the engine choice that routes between engines by the rules in settings().routing_file


def _choice(setting: str, flag: str, help: str, **cli):
    """A per-chat user choice: its default read from ``settings().<setting>`` when an Options is made; the
    metadata says it is a choice (saved with a chat, taken from the settings panel, the CLI and /v1 by
    ``updated``) and gives its command-line flag (``rag.cmd.add_choice_arguments``)."""
    return field(default_factory=lambda: getattr(settings(), setting),
                 metadata={"choice": True, "flag": flag, "help": help, **cli})


@dataclass
class Options:
    """How one question is answered. The fields made with ``_choice`` are the user's per-chat choices: the
    one list of them is ``Options.choices()``, and every surface (the chat's saved state and settings panel,
    the CLI, /v1) takes them through ``updated`` / ``saved``, so a choice added here appears everywhere."""
    engine: str = _choice("engine", "--engine", "engine: {engines}; default: LRC_ENGINE")
    model: str = _choice("model", "--model", "model id or name for that engine; default: the engine's default")
    top_k: int = _choice("top_k", "--top-k", "passages retrieved (their best sentences go to the model); default: LRC_TOP_K",
                         short="-k")
    mode: Mode = _choice("retrieval_mode", "--mode", "retrieval mode; default: LRC_RETRIEVAL_MODE", values=Mode.values)
    style: str = _choice("answer_style", "--style", "quote+answer, answer (the model only) or quote (no model); "
                         "default: LRC_ANSWER_STYLE", values=lambda: STYLES)
    temperature: float = _choice("temperature", "--temperature", "0 = greedy (default: LRC_TEMPERATURE)")
    max_new_tokens: int = _choice("max_new_tokens", "--max-tokens", f"longest answer in tokens ({prompt_mod.OWN_LENGTH}); "
                                  "default: LRC_MAX_NEW_TOKENS")
    repetition_penalty: float = field(default_factory=lambda: settings().repetition_penalty)
    min_score: float | None = None  # None = the library's relevance threshold
    context_length: int | None = None  # None = ask the engine
    scope: tuple[str, ...] | None = None  # search only these files (indexed paths); None = the whole library
    user: str | None = None  # who asks (LRC_AUTH=password): another user's uploads are never searched
    # the engine's fair queue (rag.scheduler): who waits in line without a login (a chat session, a /v1
    # client), and in which line: "chat" (served first) or "api"
    client: str | None = None
    lane: str = "chat"

    @classmethod
    def choices(cls) -> tuple[str, ...]:
        """The names of the user's per-chat choices, in their order."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("choice"))

    @classmethod
    def choice_fields(cls) -> tuple:
        return tuple(f for f in fields(cls) if f.metadata.get("choice"))

    def updated(self, values: dict) -> "Options":
        """A copy with the choices found in ``values`` (a settings panel's update, a saved chat, parsed CLI
        flags; other keys and None are ignored), normalised."""
        return replace(self, **{k: values[k] for k in self.choices() if values.get(k) is not None}).normalised()

    def saved(self) -> dict:
        """The choices as plain values (what a chat's history keeps)."""
        return {k: (str(v) if isinstance(v, Mode) else v) for k in self.choices() for v in [getattr(self, k)]}

    def normalised(self) -> "Options":
        """Values from sliders arrive as floats or strings: make them the right types and ranges (a field
        not named here is kept as it is)."""
        try:
            mode = Mode.parse(self.mode)
        except ValueError:
            mode = Mode.HYBRID
        return replace(self, engine=str(self.engine), model=str(self.model or ""),
                       top_k=max(1, min(int(float(self.top_k)), 20)),
                       mode=mode,
                       temperature=max(0.0, min(float(self.temperature), 2.0)),
                       # a chosen limit is at least 16 tokens; 0: none chosen, the model's own length
                       max_new_tokens=max(16, int(float(self.max_new_tokens))) if float(self.max_new_tokens or 0) > 0 else 0,
                       min_score=None if self.min_score is None else float(self.min_score),
                       style=str(self.style) if str(self.style) in STYLES else STYLES[0],
                       repetition_penalty=max(1.0, min(float(self.repetition_penalty), 2.0)),
                       scope=None if self.scope is None else tuple(str(p) for p in self.scope))


# ------------------------------------------------------------------------------------ helpers
def library() -> Library:
    """The shared library for the current settings (``Library.shared``: one per configuration). It may
    load an index: call it off the event loop (``opened(library)``), or pass ``library`` itself as a ``lib``."""
    from rag.library import Library  # imported late: it pulls in torch

    return Library.shared()


async def opened(lib: LibrarySource) -> Library:
    """``lib`` itself, or the library it opens (in a worker thread: opening may load an index, or fail
    with a StoreError when its database is down)."""
    return await asyncio.to_thread(lib) if callable(lib) else lib


async def warm_library() -> None:
    """Load the shared library's index and embedder (off the event loop)."""
    await asyncio.to_thread(lambda: library().search("warm up", 1, "dense"))


async def warm_engine() -> str | None:
    """Load the default engine's model (for "auto": its first routing target's engine); returns the
    engine's name. None, loading nothing, when the default answer style is "quote": the model stays out of
    memory until a chat chooses a style that asks it."""
    if settings().answer_style == "quote":
        return None
    name = settings().engine
    if name == AUTO:
        name = (await asyncio.to_thread(routing_rules)).targets[0].engine
    await engine(name).count_tokens([{"role": "user", "content": "warm up"}])  # starts a worker, loads the model
    return name


# ------------------------------------------------------------------------------------ answer
WEAK_EVIDENCE = ("Your documents do not seem to answer this: the closest passages are only loosely "
                 "related, so I will not guess. The nearest passages are listed below; try other words "
                 "or add a document that covers it.")


async def _retrieve(lib: LibrarySource, query: str, opts: Options):
    """(library, Retrieval, seconds) in a worker thread (the first call loads the index and embedder)."""
    t = time.perf_counter()
    lib = await opened(lib)  # how to open it (``library``): opened now, when the question needs it
    scope = await asyncio.to_thread(visible_scope, lib, opts.user, opts.scope)
    found = await asyncio.to_thread(lib.retrieve, query, opts.top_k, opts.mode, opts.min_score, scope)
    if scope is None and found.hits:  # nothing was hidden: unless another instance added an upload since
        found = await asyncio.to_thread(_visible_hits, lib, opts.user, found)
    return lib, found, time.perf_counter() - t


def visible_scope(lib, user: str | None, scope: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """``scope`` (None: every file) narrowed to what ``user`` may see (rag.owners: the owners the
    library records, the same for every instance on it): other users' uploads are left out; None when
    nothing needs leaving out."""
    owned = lib.owners()
    if all(owners.may_see(o, user) for o in owned.values()):  # no other user's upload is there
        return None if scope is None else tuple(scope)
    seen = owners.scope_for(user, [f.path for f in lib.files()] if scope is None else scope, owned)
    return (None if scope is None else tuple(scope)) if seen is None else seen


def _visible_hits(lib, user: str | None, found):
    """``found`` without the passages of another user's upload committed (by another instance) between
    ``visible_scope`` and the search."""
    owned = lib.owners()
    hits = [h for h in found.hits if owners.may_see(owned.get(h.chunk.source), user)]
    return found if len(hits) == len(found.hits) else replace(found, hits=hits)


async def answer(question: str, history: Sequence[Message] | None = None, options: Options | None = None,
                 control: Control | None = None, *, lib: LibrarySource) -> AsyncIterator[Event]:
    """Answer from ``lib`` (the library, or how to open it: see ``prepare``) with the engine and settings
    in ``options``: ``prepare``, then ``respond`` with the :class:`Prepared` it yields (none: it ended)."""
    opts = (options or Options()).normalised()
    async for item in prepare(question, history, opts, lib=lib):
        if isinstance(item, Prepared):  # the last item: the model answers from it
            async for event in respond(item, opts, control or Control()):
                yield event
        else:
            yield item


async def prepare(question: str, history: Sequence[Message] | None, opts: Options, *,
                  lib: LibrarySource, context_tokens: int | None = None) -> AsyncIterator[Event | Prepared]:
    """Steps 1-2: retrieval, then what the documents say (the quote) and whether they answer at all.
    Yields its events and, when the model should answer, a :class:`Prepared` as its last item (not an
    event: callers take it out of the stream); without one the answer ended here. ``lib``: the library,
    or how to open it (``library``): opened in a worker thread only when the question searches, so a
    library that cannot be opened is a Failed event and search off needs none. Counted in its engine's line
    from now (rag.scheduler ``counted``: a ``Queued`` first when it will wait; a full line: Failed, BUSY).
    ``context_tokens``: estimated tokens of passage text the model reads (None: LRC_CONTEXT_TOKENS; the /browser
    page gives its slower model fewer)."""
    on = None if opts.style == "quote" or opts.engine == AUTO else opts.engine  # "auto": known once routed
    steps = _prepare(question, history, opts, lib=lib, context_tokens=context_tokens or settings().context_tokens)
    async for item in scheduler.counted(on, opts.user or opts.client, steps,
                                        until=lambda item: isinstance(item, Prepared), lane=opts.lane):
        yield item


async def _prepare(question: str, history: Sequence[Message] | None, opts: Options, *,
                   lib: LibrarySource, context_tokens: int) -> AsyncIterator[Event | Prepared]:
    """``prepare``'s steps."""
    t0, question, history = time.perf_counter(), (question or "").strip(), tuple(history or ())
    if not question:
        yield Failed("The question is empty.", "Type a question about your documents.", ErrorCategory.BAD_REQUEST)
        return
    # a follow-up ("and how do I undo it?") retrieves with the conversation
    query = standalone_query(question, history) if history else question

    # 1. retrieval (off the loop)
    if opts.mode == Mode.OFF:
        yield Retrieved(query, [], opts.mode, 0.0)
        yield NothingFound("off", "Retrieval is off: this answer does not use your documents.", True)
        yield Prepared(question, history, query, t0=t0)
        return
    try:
        async with scheduler.retrieval_turn():
            lib, found, seconds = await _retrieve(lib, query, opts)
    except StoreError as exc:  # a shared library's database: unreachable, too slow, another model
        yield Failed.of(exc, f"The library is unavailable. {exc}", "Ask again once it is back, or set Search to off "
                        "in the settings to chat without your documents.")
        return
    except Exception as exc:  # a broken index must not take the chat down
        yield Failed.of(exc, f"Searching the library failed: {exc}",
                        "Re-index your documents (`python -m rag index`).")
        return
    timings, hits = {"retrieval": seconds}, tuple(found.hits)
    for note in found.notices:
        yield Notice(note)
    yield Retrieved(query, list(hits), opts.mode, seconds, opts.scope)
    if found.library_empty:
        yield NothingFound("empty", "Your library is empty: drop files into the chat to add documents. "
                                    "This answer does not use your documents.", True)
    elif not found.relevant:
        yield NothingFound("irrelevant", "I found nothing about this in your documents, so I cannot answer "
                                         "it from them. Try other words, another retrieval mode, or add a "
                                         "document that covers it.", False)
        yield Sources([], [])
        return
    if not hits:
        yield Prepared(question, history, query, timings=timings, t0=t0)
        return

    # 2. what the documents say: the best sentences (quoted first), and whether they answer at all.
    # Passages found with the conversation; their sentences scored against the question itself (for a
    # follow-up the new question says what is wanted now: measured, docs/BENCHMARKS.md "Answers")
    embedder = lib.embedder
    async with scheduler.retrieval_turn():
        ev = await asyncio.to_thread(evidence.select, embedder, question, list(hits),
                                     unknown_terms=lib.unknown_terms, conversation=query)
    if not ev.answerable:
        never = ", ".join(ev.unknown_names)
        yield NothingFound("weak", (f"Your documents never mention {never}, so I cannot answer this from them. "
                                    "The nearest passages are listed below.") if never else WEAK_EVIDENCE, False)
        yield Sources([], list(hits))
        return
    quote, quoted = "", ()
    if opts.style != "answer":
        timings["first_text"] = time.perf_counter() - t0
        shown = Quoted([(s.text, hits[s.hit]) for s in ev.quotes], timings["first_text"])
        quote, quoted = shown.text, tuple(t for t, _ in shown.quotes)
        yield shown
        if opts.style == "quote":
            timings["total"] = time.perf_counter() - t0
            used = list({id(h): h for _, h in shown.quotes}.values())  # a passage quoted twice is one source
            yield Sources(used, list(hits))
            yield Done(Usage(finish_reason="stop"), "", "", quote, "", timings)
            return
    yield Prepared(question, history, query, embedder, hits, tuple(evidence.context(ev, context_tokens)), quote, quoted, timings, t0)


async def respond(prep: Prepared, opts: Options, control: Control) -> AsyncIterator[Event]:
    """Steps 3-4: the model's answer from the prepared passages (``opts.engine``, or the routing
    rules when it is "auto"), checked, with its sources."""
    if opts.engine == AUTO:
        from rag.routing.rules import RulesError

        try:
            rules = await asyncio.to_thread(routing_rules)
        except RulesError as err:  # say so, and answer with the default engine
            default = settings().engine if settings().engine != AUTO else registry.IN_PROCESS
            yield Notice(f"The routing rules cannot be used: {err}. This answer uses the default engine "
                         f"({engine_short(default)}).")
            opts = replace(opts, engine=default, model="")
        else:
            async for event in routed(rules, prep, opts, control):
                yield event
            return
    try:
        eng = engine(opts.engine)
    except EngineError as err:
        yield Failed.of(err)
        return
    model, made = opts.model or None, None
    try:
        async for item in generate(eng, model, prep, opts, control):
            if isinstance(item, Generated):
                made = item
            else:
                yield item
    except EngineError as err:
        yield Failed.of(err)
        return
    async for event in finish_answer(prep, control, eng, model, made):
        yield event


# ------------------------------------------------------------------------------------ ingest
async def ingest(paths: Iterable[str | Path], display_names: dict[str, str] | None = None, *,
                 lib: LibrarySource, force: bool = False, owner: str | None = None) -> AsyncIterator[Event]:
    """Index files into ``lib`` (the library, or how to open it) in a worker thread, yielding its progress.
    ``force``: read and embed them again even when unchanged (a re-index). ``owner``: the user whose
    upload they are (recorded in the library; None keeps each file's recorded owner, else shared)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    paths = [str(p) for p in paths]

    def progress(p) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, Progress(p))

    def work():  # a job of the library's queue: shown in the Library view, cancellable there
        return ingest_beside_answers(lib() if callable(lib) else lib, paths, progress, display_names, force, owner)

    task = asyncio.ensure_future(asyncio.to_thread(work))
    while True:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            yield getter.result()
            continue
        getter.cancel()
        break
    while not queue.empty():
        yield queue.get_nowait()
    try:
        report = task.result()
    except IngestCancelled as exc:
        yield Failed.of(exc)
        return
    except Exception as exc:  # the library reports bad files itself; this is an unexpected failure
        yield Failed.of(exc, f"Indexing failed: {exc}", "See the server log for details.")
        return
    yield Ingested(report)


async def ingest_uploads(files: Sequence[tuple[str | Path, str]], *, lib: LibrarySource, uploads_dir: Path | None = None,
                         owner: str | None = None) -> AsyncIterator[Event]:
    """Chat uploads (temp path, original name): copy into the uploads folder (``owner``'s own, by
    default), index them as ``owner``'s (rag.owners: the chat user; None without users: shared). A call
    that names only ``uploads_dir`` gets the user whose folder that is (``owners.uploads_dir(user)``)."""
    if owner is None:
        owner = owners.user_of_uploads(uploads_dir)
    elif uploads_dir is None:
        uploads_dir = owners.uploads_dir(owner)
    stored = [await asyncio.to_thread(store_upload, path, name, uploads_dir) for path, name in files]
    names = {str(p): p.name for p in stored}
    async for event in ingest(stored, display_names=names, lib=lib, owner=owner):
        yield event


# ------------------------------------------------------------------------------------ the library, managed
# ``lib`` everywhere: the library, or how to open it (``library``: the shared one for the settings).
# What the chat's Library view and the chat start need (rag.catalog: who may do what, stored copies):
# the documents a user may see, removing or re-indexing one (with users: only their own uploads), and
# the bundled user guide (settings().docs_corpus) kept in the library unless the user removed a file of it.
__all__ += ["LibraryDocument", "Removed", "READ_ONLY", "may_manage", "StoreError", "library_status",
            "library_unavailable", "documents",
            "remove_document", "reindex",
            "ensure_guide", "guide_present"]
_guide_lock = asyncio.Lock()  # one chat at a time checks and indexes the guide


async def library_status():
    """(the library's stats, None) when it can be used; else (None, why not: a sentence to show — its
    database cannot be reached, holds another model's vectors, ...). The chat starts either way."""
    try:
        lib = await asyncio.to_thread(library)
        return await asyncio.to_thread(lambda: (lib.backend.ensure_model(), lib.stats())[1]), None
    except StoreError as exc:
        return None, str(exc)


async def library_unavailable() -> str | None:
    """None when the library can be used; else why not (``library_status``)."""
    return (await library_status())[1]


async def documents(user: str | None, *, lib: LibrarySource) -> list[LibraryDocument]:
    """The documents ``user`` may see (rag.owners), by name."""
    return await asyncio.to_thread(catalog.listing, await opened(lib), user)


async def remove_document(path: str | Path, user: str | None, *, lib: LibrarySource) -> Removed:
    """Take one file out of the library: its passages, vectors and BM25 terms, and the library's stored
    copy of a dropped file (never a file elsewhere). Raises LookupError (not in the library) or
    PermissionError (not this user's to manage), both with a sentence to show."""
    return await asyncio.to_thread(catalog.remove, await opened(lib), str(path), user)


async def reindex(path: str | Path, user: str | None, *, lib: LibrarySource) -> AsyncIterator[Event]:
    """Read, chunk and embed one library file again, even when unchanged: Progress* -> Ingested (a file
    gone from disk is in the report's ``failed``; its passages stay). Raises like ``remove_document``."""
    lib = await opened(lib)
    entry = await asyncio.to_thread(catalog.managed, lib, str(path), user)
    async for event in ingest([entry.path], lib=lib, force=True):
        yield event


async def ensure_guide(*, lib: LibrarySource) -> AsyncIterator[Event]:
    """At chat start: index the files of the bundled user guide that are missing from the library (or
    changed), unless the user removed a guide file before (``rag remove`` or the Library view: never
    added back). Yields the ingest's events (Progress* -> Ingested), or nothing when there is nothing
    to do. Chats starting together take turns: the second finds nothing left to do."""
    async with _guide_lock:
        lib = await opened(lib)
        missing = await asyncio.to_thread(lib.guide_missing)
        if missing:
            async for event in ingest(missing, lib=lib):
                yield event


async def guide_present(*, lib: LibrarySource) -> bool:
    """Every file of the bundled user guide is in the library: questions about the app can be answered
    (the welcome's example questions)."""
    return await asyncio.to_thread((await opened(lib)).guide_present)
