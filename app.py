"""Local RAG Chat: the Chainlit handlers. Rendering only: everything else is rag.pipeline.

Process-wide state (the library, the engines) has one owner each (rag.library / engines.registry);
per-chat choices live in cl.user_session ("options", "history", "control").
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import textwrap
import time

from rag.config import offline_env, settings  # noqa: E402

offline_env()  # before Chainlit or anything else can import Hugging Face code

import chainlit as cl  # noqa: E402
from chainlit.input_widget import Select, Slider  # noqa: E402
import chainlit.server as cl_server  # noqa: E402

from engines import registry  # noqa: E402
from engines.base import EngineError  # noqa: E402
from rag import pipeline as pl  # noqa: E402
from rag.schema import Mode  # noqa: E402

log = logging.getLogger("local-rag-chat")
log.setLevel(logging.INFO)
_corpus_lock = asyncio.Lock()  # the first chat on an empty library indexes docs_corpus; others wait
_warm_task: asyncio.Task | None = None
DEFAULT = "default"  # the model select's value for "the engine's default" (a select value cannot be "")
STYLES = {"Quote from the documents, then the model's answer": "quote+answer", "The model's answer only": "answer",
          "Quote only (no model)": "quote"}


# ------------------------------------------------------------------ process start: warm models
async def _warm() -> None:
    """Load the index + embedder and the default engine's model once, in the background."""
    t = time.perf_counter()
    try:
        await asyncio.to_thread(lambda: pl.library().search("warm up", 1, "dense"))
        engine = pl.engine(settings().engine)
        await engine.count_tokens([{"role": "user", "content": "warm up"}])  # starts the worker, loads the model
        log.info("warm: library and %s engine ready in %.1fs", engine.name, time.perf_counter() - t)
    except Exception as exc:  # the chat reports problems when they matter; never crash the server
        log.warning("warm-up failed: %s", exc)


@cl.on_app_startup
async def startup() -> None:
    global _warm_task
    if settings().warmup:
        _warm_task = asyncio.create_task(_warm())


# ------------------------------------------------------------------ the page: nothing from the internet
# Chainlit's page links a public CDN (KaTeX CSS; LaTeX is off here) and preconnects to Google Fonts
# (the theme sets no web font): the browser would contact both on every load. Drop such links where the
# page is made (Chainlit's page route calls this module-level function for each load).
_EXTERNAL_LINK = re.compile(r"[ \t]*<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*>\n?", re.S)
_chainlit_page = cl_server.get_html_template


def _local_page(root_path: str) -> str:
    return _EXTERNAL_LINK.sub("", _chainlit_page(root_path))


cl_server.get_html_template = _local_page


# ------------------------------------------------------------------ settings panel
def _start_hint(engine_name: str, said: str) -> str:
    """How to start an engine that runs as a service (unless the error already said it)."""
    try:
        hint = pl.engine(engine_name).start_hint
    except EngineError:
        return ""
    commands = re.findall(r"`([^`]+)`", hint or "")
    return "" if not hint or hint in said or any(c in said for c in commands) else hint


async def _model_items(engine_name: str) -> dict[str, str]:
    """Label -> model id for the engine; raises EngineError when it cannot be reached."""
    engine = pl.engine(engine_name)
    models = await asyncio.wait_for(engine.list_models(), timeout=15)
    return {(m.name or m.id): m.id for m in models} or {"(engine default)": DEFAULT}


async def _send_settings(opts: pl.Options, models: dict[str, str]) -> None:
    shown = opts.model or DEFAULT
    if shown not in models.values():  # the engine's default, an alias, or a model this engine lacks
        resolved = await pl.model_label(pl.engine(opts.engine), opts.model or None)
        shown = resolved if resolved in models.values() else next(iter(models.values()))
        opts.model = shown if opts.model else ""
    engines = {label: name for name, label in registry.labels().items()}
    await cl.ChatSettings([
        Select(id="engine", label="Engine", items=engines, initial_value=opts.engine),
        Select(id="model", label="Model", items=models, initial_value=shown,
               description="Models of the chosen engine (confirm a new engine to refresh this list)"),
        Slider(id="top_k", label="Passages", initial=opts.top_k, min=1, max=10, step=1),
        Select(id="mode", label="Retrieval mode", values=Mode.values(), initial_value=opts.mode),
        Select(id="style", label="Answer", items=STYLES, initial_value=opts.style,
               description="Quote only needs no model: instant, for slow machines"),
        Slider(id="temperature", label="Temperature", initial=opts.temperature, min=0, max=1.5, step=0.1),
        Slider(id="max_new_tokens", label="Max answer tokens", initial=opts.max_new_tokens, min=32, max=1024,
               step=32),
    ]).send()
    opts.model = "" if opts.model == DEFAULT else opts.model


@cl.on_settings_update
async def settings_update(values: dict) -> None:
    old: pl.Options = cl.user_session.get("options")
    new = pl.Options(engine=values.get("engine", old.engine), model=values.get("model", old.model),
                     top_k=values.get("top_k", old.top_k), mode=values.get("mode", old.mode),
                     temperature=values.get("temperature", old.temperature), style=values.get("style", old.style),
                     max_new_tokens=values.get("max_new_tokens", old.max_new_tokens)).normalised()
    try:
        models = await _model_items(new.engine)
    except (EngineError, asyncio.TimeoutError) as err:
        text = err.user_text() if isinstance(err, EngineError) else "It did not answer within 15 s."
        how = _start_hint(new.engine, text)
        label = registry.labels().get(new.engine, new.engine)
        await cl.Message(content=f"**{label} is not reachable.** {text} {how}\n\n"
                                 f"Still using **{registry.labels().get(old.engine, old.engine)}**.").send()
        new.engine, new.model = old.engine, old.model
        try:
            models = await _model_items(old.engine)
        except (EngineError, asyncio.TimeoutError):
            models = {"(engine default)": DEFAULT}
    if new.engine != old.engine and new.model not in models.values():
        new.model = ""
    await _send_settings(new, models)
    cl.user_session.set("options", new)


# ------------------------------------------------------------------ chat start
async def _index_corpus_if_empty() -> None:
    async with _corpus_lock:
        stats = await asyncio.to_thread(lambda: pl.library().stats())
        corpus = settings().docs_corpus
        if stats.chunks or not corpus.is_dir():
            return
        files = sorted(p for p in corpus.rglob("*") if p.is_file())
        await _run_ingest(pl.ingest(files), f"First start: indexing the {len(files)} documents in `{corpus.name}/`")


@cl.on_chat_start
async def start() -> None:
    opts = pl.Options().normalised()
    cl.user_session.set("options", opts)
    cl.user_session.set("history", [])
    await _index_corpus_if_empty()
    try:
        models = await _model_items(opts.engine)
    except (EngineError, asyncio.TimeoutError) as err:
        text = err.user_text() if isinstance(err, EngineError) else "It did not answer within 15 s."
        await cl.Message(content=f"The default engine is not ready: {text}").send()
        models = {"(engine default)": DEFAULT}
    await _send_settings(opts, models)
    stats = await asyncio.to_thread(lambda: pl.library().stats())
    await cl.Message(content=(
        f"**Welcome to Local RAG Chat.** Your library holds **{stats.files} files** "
        f"(**{stats.chunks} passages**). Ask a question about them: answers cite their sources like [1].\n\n"
        "To add documents, drop PDF, Markdown, text, reStructuredText or HTML files into the chat (or use "
        "the paperclip), or run `python -m rag index PATH`. The gear button next to the message box "
        "changes the engine, model and retrieval settings for this chat. Or try one of these:"),
        actions=[cl.Action(name="starter", payload={"question": q}, label=q) for q in STARTERS]).send()


# Example questions about docs_corpus/. Chainlit hides its starters once the chat holds a message, and
# the welcome is one, so they are buttons on the welcome message instead.
STARTERS = ["How do I add documents to the library?", "How do I use Phi-4-mini with the in-process engine?",
            "How do I connect a Foundry Local endpoint?", "Does Local RAG Chat send my documents to the internet?"]


@cl.action_callback("starter")
async def starter(action: cl.Action) -> None:
    question = action.payload["question"]
    await cl.Message(content=question, author="You", type="user_message").send()
    await _answer(question)


# ------------------------------------------------------------------ messages
async def _run_ingest(events, title: str) -> None:
    msg = cl.Message(content=f"{title}…")
    await msg.send()
    last = 0.0
    async for ev in events:
        if isinstance(ev, pl.Progress) and time.monotonic() - last > 0.5:
            p = ev.progress
            name = os.path.basename(str(getattr(p, "file", "") or ""))
            msg.content = f"{title}… {p.stage} {name} ({p.done}/{p.total})"
            await msg.update()
            last = time.monotonic()
        elif isinstance(ev, pl.Ingested):
            r = ev.report
            lines = [f"{title}: done. {r.summary()}"]
            for f, reason in r.failed:
                name = os.path.basename(str(f))
                reason = str(reason).removeprefix(f"{f}: ").removeprefix(f"{name}: ")
                lines.append(f"- ✗ **{name}** was not indexed: {reason}")
            msg.content = "\n".join(lines)
            await msg.update()
        elif isinstance(ev, pl.Failed):
            msg.content = f"{title}: failed. {ev.text}"
            await msg.update()


def _retrieval_text(ev: pl.Retrieved) -> str:
    if ev.mode == "off":
        return "Retrieval is off."
    lines = [f"mode: {ev.mode} · {len(ev.hits)} passages · {ev.seconds:.2f} s", ""]
    for h in ev.hits:
        extra = " ".join(f"{k}={v:.3f}" for k, v in (h.scores or {}).items() if isinstance(v, (int, float)))
        lines += [f"#{h.rank} {h.chunk.citation()}  score={h.score:.3f} {extra}".rstrip(),
                  " ".join(h.chunk.text.split())[:600], ""]
    return "\n".join(lines)


def _wrap(text: str, width: int = 50) -> str:
    """Long lines wrapped for the side view (code blocks do not wrap); the words are unchanged."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) or line
                     for line in text.splitlines())


async def _source_elements(src: pl.Sources) -> tuple[list, str]:
    elements, names, pdfs = [], [], set()
    for h in src.shown:
        n = src.used.index(h) + 1
        name = f"[{n}] {h.chunk.citation()}"
        names.append(name)
        elements.append(cl.Text(name=name, content=_wrap(h.chunk.text), language="text", display="side"))
        if h.chunk.source.lower().endswith(".pdf") and os.path.isfile(h.chunk.source) \
                and (h.chunk.source, h.chunk.page) not in pdfs:
            pdfs.add((h.chunk.source, h.chunk.page))
            pdf_name = f"open {h.chunk.name} at p. {h.chunk.page or 1}"
            names.append(pdf_name)
            elements.append(cl.Pdf(name=pdf_name, path=h.chunk.source, page=h.chunk.page or 1, display="side"))
    return elements, " · ".join(names)


async def _append(msg: cl.Message, block: str) -> None:
    """A paragraph after the answer; closes a code block the model left open (it would swallow it)."""
    if msg.content.count("```") % 2:
        await msg.stream_token("\n```")
    await msg.stream_token(("\n\n" if msg.content else "") + block)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    files = [(e.path, e.name) for e in (message.elements or []) if getattr(e, "path", None)]
    if files:
        await _run_ingest(pl.ingest_uploads(files), f"Indexing {len(files)} file(s)")
    question = (message.content or "").strip()
    if question:
        await _answer(question)


async def _answer(question: str) -> None:
    opts: pl.Options = cl.user_session.get("options")
    history: list = cl.user_session.get("history")
    control = pl.Control()
    cl.user_session.set("control", control)
    msg = cl.Message(content="")
    text = ""
    quote, notes = "", []
    async for ev in pl.answer(question, history, opts, control):
        if isinstance(ev, pl.Retrieved):
            async with cl.Step(name="Retrieval", type="retrieval", language="text", show_input="text") as step:
                step.input = ev.query  # a follow-up shows the query built from the conversation
                step.output = _retrieval_text(ev)
        elif isinstance(ev, (pl.NothingFound, pl.Notice)):
            note = ev.message if isinstance(ev, pl.NothingFound) else ev.text
            if msg.content:  # said about the answer being written: it belongs under it
                notes.append(f"*{note}*")
            else:
                await cl.Message(content=f"*{note}*").send()
        elif isinstance(ev, pl.Quoted):
            quote = "**From your documents:**\n" + "\n>\n".join(f"> {t} — *{h.chunk.citation()}*" for t, h in ev.quotes)
            await msg.stream_token(quote + "\n\n")
        elif isinstance(ev, pl.Token):
            await msg.stream_token(ev.text)
        elif isinstance(ev, pl.Revised):
            msg.content = (quote + "\n\n" if quote else "") + ev.text
        elif isinstance(ev, pl.Sources):
            if notes:
                await _append(msg, "\n".join(notes))
            if ev.shown:
                for old in cl.user_session.get("side_elements") or []:  # the side view shows this answer's sources
                    await old.remove()
                msg.elements, names = await _source_elements(ev)
                cl.user_session.set("side_elements", msg.elements)
                await _append(msg, f"**Sources:** {names}")
        elif isinstance(ev, pl.Done):
            text, u, t = ev.text, ev.usage, ev.timings
            first = f"first text {t['first_text']:.2f} s · " if "first_text" in t else ""
            if not ev.engine:
                await _append(msg, f"`quote only (no model) · {first}total {t.get('total', 0):.2f} s`")
                continue
            ttft = f"{u.time_to_first_token:.2f} s" if u.time_to_first_token is not None else "–"
            await _append(msg, f"`{registry.labels().get(ev.engine, ev.engine)} · {ev.model} · {first}TTFT {ttft} · "
                               f"{u.tokens_per_second:.1f} tokens/s · {u.completion_tokens} tokens`")
        elif isinstance(ev, pl.Failed):
            await _append(msg, f"**Error:** {ev.text}")
    if msg.content or msg.elements:
        await msg.send()
    if text:
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
        cl.user_session.set("history", history[-12:])


@cl.on_stop
async def on_stop() -> None:
    control = cl.user_session.get("control")
    if control:
        await control.cancel()
