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
from dataclasses import replace

from rag.config import offline_env, settings  # noqa: E402

offline_env()  # before Chainlit or anything else can import Hugging Face code

import chainlit as cl  # noqa: E402
from chainlit.input_widget import Select, Slider  # noqa: E402
import chainlit.server as cl_server  # noqa: E402

from engines import registry  # noqa: E402
from engines.base import EngineError  # noqa: E402
from rag import pipeline as pl  # noqa: E402
from rag.api import mount as mount_api  # noqa: E402
from rag.schema import Mode  # noqa: E402

log = logging.getLogger("local-rag-chat")
log.setLevel(logging.INFO)
_corpus_lock = asyncio.Lock()  # the first chat on an empty library indexes docs_corpus; others wait
_warm_task: asyncio.Task | None = None
OFF = "off"  # the "Compare with" select's value for no comparison
AUTO_LABEL = "Auto (routing rules)"
DEFAULT = "default"  # the model select's value for "the engine's default" (a select value cannot be "")
STYLES = {"Quote from the documents, then the model's answer": "quote+answer", "The model's answer only": "answer",
          "Quote only (no model)": "quote"}


# ------------------------------------------------------------------ process start: warm models
async def _warm() -> None:
    """Load the index + embedder and the default engine's model once, in the background."""
    t = time.perf_counter()
    try:
        await pl.warm_library()
        name = await pl.warm_engine()
        log.info("warm: library and %s engine ready in %.1fs", name, time.perf_counter() - t)
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

# The OpenAI-compatible API (/v1: models, chat completions, embeddings) on the chat's own server, in front
# of Chainlit's catch-all page route (rag.api.mount puts it there).
mount_api(cl_server.app)


# ------------------------------------------------------------------ settings panel
def _start_hint(engine_name: str, said: str) -> str:
    """How to start an engine that runs as a service (unless the error already said it)."""
    try:
        hint = pl.engine(engine_name).start_hint
    except EngineError:
        return ""
    commands = re.findall(r"`([^`]+)`", hint or "")
    return "" if not hint or hint in said or any(c in said for c in commands) else hint


def _engine_items() -> dict[str, str]:
    """Label -> engine name for the settings panel: every registered engine, then "auto"."""
    items = {label: name for name, label in registry.labels().items()}
    items[AUTO_LABEL] = pl.AUTO
    return items


async def _model_items(engine_name: str) -> dict[str, str]:
    """Label -> model id for the engine; raises EngineError when it cannot be reached (RulesError
    when "auto" has a bad rules file)."""
    if engine_name == pl.AUTO:
        rules = await asyncio.to_thread(pl.routing_rules)
        return {f"By the rules: {' → '.join(t.label for t in rules.targets)}": DEFAULT}
    engine = pl.engine(engine_name)
    models = await asyncio.wait_for(engine.list_models(), timeout=15)
    return {(m.name or m.id): m.id for m in models} or {"(engine default)": DEFAULT}


async def _compare_items() -> dict[str, str]:
    """What an answer can be compared with: off, then every model of every engine that lists its
    models within 5 s, then "auto" (label -> "ENGINE:MODEL")."""
    async def listed(name: str):
        try:
            return name, await asyncio.wait_for(pl.engine(name).list_models(), timeout=5)
        except (EngineError, asyncio.TimeoutError):
            return name, []

    items = {"Off": OFF}
    for name, models in await asyncio.gather(*(listed(n) for n in registry.ENGINES)):
        for m in models:
            items[f"{pl.engine_short(name)} · {m.name or m.id}"] = f"{name}:{m.id}"
    items[AUTO_LABEL] = f"{pl.AUTO}:"
    return items


async def _choice_label(engine: str, model: str) -> str:
    if engine == pl.AUTO:
        return AUTO_LABEL
    return f"{pl.engine_short(engine)} · {await pl.model_label(pl.engine(engine), model or None)}"


async def _send_settings(opts: pl.Options, models: dict[str, str], compare: str = OFF,
                         compare_items: dict[str, str] | None = None) -> None:
    shown = opts.model or DEFAULT
    if shown not in models.values():  # the engine's default, an alias, or a model this engine lacks
        if opts.engine == pl.AUTO:
            shown = DEFAULT
        else:
            resolved = await pl.model_label(pl.engine(opts.engine), opts.model or None)
            shown = resolved if resolved in models.values() else next(iter(models.values()))
        opts.model = shown if opts.model else ""
    compare_items = compare_items or {"Off": OFF}
    if compare not in compare_items.values():
        compare_items[compare] = compare
    about_model = ("Models of the chosen engine (confirm a new engine to refresh this list)" if opts.engine != pl.AUTO
                   else f"Auto tries these in order, falling back when one is down, slow or too small. "
                        f"Rules file: {settings().routing_file}")
    await cl.ChatSettings([
        Select(id="engine", label="Engine", items=_engine_items(), initial_value=opts.engine),
        Select(id="model", label="Model", items=models, initial_value=shown, description=about_model),
        Select(id="compare", label="Compare with", items=compare_items, initial_value=compare,
               description="Answer each question twice, side by side: with the engine and model above (A) "
                           "and with this one (B), from the same passages"),
        Select(id="scope", label="Search", items=SCOPES, initial_value=cl.user_session.get("scope") or "all",
               description="Only this chat's files: the files dropped into this chat"),
        Slider(id="top_k", label="Passages", initial=opts.top_k, min=1, max=10, step=1),
        Select(id="mode", label="Retrieval mode", values=Mode.values(), initial_value=opts.mode),
        Select(id="style", label="Answer", items=STYLES, initial_value=opts.style,
               description="Quote only needs no model: instant, for slow machines"),
        Slider(id="temperature", label="Temperature", initial=opts.temperature, min=0, max=1.5, step=0.1),
        Slider(id="max_new_tokens", label="Max answer tokens", initial=opts.max_new_tokens, min=32, max=1024,
               step=32),
    ]).send()
    opts.model = "" if opts.model == DEFAULT else opts.model


async def _try_models(engine_name: str) -> tuple[dict[str, str] | None, str]:
    """(models, "") or (None, what to tell the user) when the engine cannot be used."""
    from rag.routing.rules import RulesError

    try:
        return await _model_items(engine_name), ""
    except RulesError as err:
        return None, f"**The routing rules cannot be used.** {err}"
    except (EngineError, asyncio.TimeoutError) as err:
        text = err.user_text() if isinstance(err, EngineError) else "It did not answer within 15 s."
        label = registry.labels().get(engine_name, engine_name)
        return None, f"**{label} is not reachable.** {text} {_start_hint(engine_name, text)}"


@cl.on_settings_update
async def settings_update(values: dict) -> None:
    old: pl.Options = cl.user_session.get("options")
    new = pl.Options(engine=values.get("engine", old.engine), model=values.get("model", old.model),
                     top_k=values.get("top_k", old.top_k), mode=values.get("mode", old.mode),
                     temperature=values.get("temperature", old.temperature), style=values.get("style", old.style),
                     max_new_tokens=values.get("max_new_tokens", old.max_new_tokens)).normalised()
    (models, problem), compare_items = await asyncio.gather(_try_models(new.engine), _compare_items())
    if problem:  # back to the previous engine; if that is "auto" with bad rules too, to the default engine
        back = old.engine if old.engine != new.engine else settings().engine
        new.engine, new.model = back, old.model if back == old.engine else ""
        models, _ = await _try_models(back)
        await cl.Message(content=f"{problem}\n\nStill using **{_engine_label(back)}**.").send()
        models = models or {"(engine default)": DEFAULT}
    if new.engine != old.engine and new.model not in models.values():
        new.model = ""
    compare = str(values.get("compare", cl.user_session.get("compare") or OFF))
    scope = str(values.get("scope", cl.user_session.get("scope") or "all"))
    cl.user_session.set("scope", scope)
    new.scope = _scope(scope)
    await _send_settings(new, models, compare, compare_items)
    cl.user_session.set("options", new)
    cl.user_session.set("compare", compare)


def _engine_label(name: str) -> str:
    return AUTO_LABEL if name == pl.AUTO else registry.labels().get(name, name)


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
    cl.user_session.set("compare", OFF)
    (models, problem), compare_items = await asyncio.gather(_try_models(opts.engine), _compare_items())
    if problem:
        await cl.Message(content=f"The default engine is not ready. {problem}").send()
        models = {"(engine default)": DEFAULT}
    await _send_settings(opts, models, OFF, compare_items)
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
async def _run_ingest(events, title: str):
    """Show an ingest's progress in one message; returns its report (None when it failed)."""
    msg = cl.Message(content=f"{title}…")
    await msg.send()
    last, report = 0.0, None
    async for ev in events:
        if isinstance(ev, pl.Progress) and time.monotonic() - last > 0.5:
            p = ev.progress
            name = os.path.basename(str(getattr(p, "file", "") or ""))
            msg.content = f"{title}… {p.stage} {name} ({p.done}/{p.total})"
            await msg.update()
            last = time.monotonic()
        elif isinstance(ev, pl.Ingested):
            r = report = ev.report
            lines = [f"{title}: done. {r.summary()}"]
            for f, reason in r.failed:
                name = os.path.basename(str(f))
                reason = str(reason).removeprefix(f"{f}: ").removeprefix(f"{name}: ")
                lines.append(f"- ✗ **{name}** was not indexed: {reason}")
            for why, names in r.skipped_by_reason().items():
                shown = ", ".join(os.path.basename(n) for n in names[:10]) + (" …" if len(names) > 10 else "")
                lines.append(f"- skipped {len(names)} file(s), {why}: {shown}")
            msg.content = "\n".join(lines)
            await msg.update()
        elif isinstance(ev, pl.Failed):
            msg.content = f"{title}: failed. {ev.text}"
            await msg.update()
    return report


def _retrieval_text(ev: pl.Retrieved) -> str:
    if ev.mode == "off":
        return "Retrieval is off."
    scope = "all documents" if ev.scope is None else f"only this chat's files ({len(ev.scope)})"
    lines = [f"mode: {ev.mode} · scope: {scope} · {len(ev.hits)} passages · {ev.seconds:.2f} s", ""]
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
        report = await _run_ingest(pl.ingest_uploads(files), f"Indexing {len(files)} file(s)")
        if report is not None:
            await _add_chat_files([*report.added, *report.updated, *report.unchanged])
    question = (message.content or "").strip()
    if question:
        await _answer(question)


# ------------------------------------------------------------------ per-chat scope
SCOPES = {"All documents": "all", "Only this chat's files": "chat"}


def _scope(choice: str) -> tuple[str, ...] | None:
    """The files a chat's questions search: None (the whole library) or the files dropped into it."""
    return tuple(cl.user_session.get("chat_files") or ()) if choice == "chat" else None


async def _add_chat_files(paths: list[str]) -> None:
    files = list(dict.fromkeys([*(cl.user_session.get("chat_files") or []), *map(str, paths)]))
    cl.user_session.set("chat_files", files)
    opts: pl.Options = cl.user_session.get("options")
    if (cl.user_session.get("scope") or "all") == "chat":
        opts.scope = _scope("chat")
    elif paths:
        await cl.Message(content=f"Questions in this chat search all your documents. To search only the "
                                 f"{len(files)} file(s) dropped into this chat:",
                         actions=[cl.Action(name="scope_chat", payload={}, label="Search only this chat's files")]).send()


@cl.action_callback("scope_chat")
async def scope_chat(action: cl.Action) -> None:
    opts: pl.Options = cl.user_session.get("options")
    cl.user_session.set("scope", "chat")
    opts.scope = _scope("chat")
    await _resend_settings(opts)
    await cl.Message(content=f"This chat now searches only its own {len(opts.scope)} file(s) (the gear "
                             f"button's *Search* switches back).").send()


async def _resend_settings(opts: pl.Options) -> None:
    models, _ = await _try_models(opts.engine)
    await _send_settings(opts, models or {"(engine default)": DEFAULT}, cl.user_session.get("compare") or OFF,
                         await _compare_items())


def _footer(ev: pl.Done) -> str:
    u, t = ev.usage, ev.timings
    first = f"first text {t['first_text']:.2f} s · " if "first_text" in t else ""
    if not ev.engine:
        return f"`quote only (no model) · {first}total {t.get('total', 0):.2f} s`"
    ttft = f"{u.time_to_first_token:.2f} s" if u.time_to_first_token is not None else "–"
    return (f"`{registry.labels().get(ev.engine, ev.engine)} · {ev.model} · {first}TTFT {ttft} · "
            f"{u.tokens_per_second:.1f} tokens/s · {u.prompt_tokens} prompt + {u.completion_tokens} answer tokens`")


def _quote_text(ev: pl.Quoted) -> str:
    return "**From your documents:**\n" + "\n>\n".join(f"> {t} — *{h.chunk.citation()}*" for t, h in ev.quotes)


class _AnswerView:
    """One answer message: renders the pipeline's events for it (one per side in a comparison)."""

    def __init__(self, head: str = "", own_side_view: bool = True):
        self.msg = cl.Message(content="")
        self.head = head  # what stays above the model's text: a title, the quote, routing lines, partials
        self.notes: list[str] = []
        self.text = ""  # the whole answer, once Done
        self.own_side_view = own_side_view  # replace the previous answer's sources in the side view

    async def start(self) -> None:
        if self.head:
            await self.msg.stream_token(self.head)

    async def _head(self, block: str) -> None:
        """A block that stays above the model's text (Revised rewrites only what follows it)."""
        self.head += block
        await self.msg.stream_token(block)

    async def show(self, ev) -> None:
        msg = self.msg
        if isinstance(ev, (pl.NothingFound, pl.Notice)):
            note = ev.message if isinstance(ev, pl.NothingFound) else ev.text
            if msg.content:  # said about the answer being written: it belongs under it
                self.notes.append(f"*{note}*")
            else:
                await cl.Message(content=f"*{note}*").send()
        elif isinstance(ev, pl.Quoted):
            await self._head(_quote_text(ev) + "\n\n")
        elif isinstance(ev, pl.Routed):
            await self._head(f"*↪ {ev.text}*\n\n")
        elif isinstance(ev, pl.FellBack):
            partial = "\n".join(f"> {line}" for line in ev.partial.strip().splitlines())
            if msg.content.count("```") % 2:
                await msg.stream_token("\n```")
            msg.content = self.head + f"*⚠️ Interrupted — {ev.reason}. Its partial answer, kept:*\n{partial}\n\n"
            self.head = msg.content
            await msg.update()
        elif isinstance(ev, pl.Token):
            await msg.stream_token(ev.text)
        elif isinstance(ev, pl.Revised):
            msg.content = self.head + ev.text
        elif isinstance(ev, pl.Sources):
            if self.notes:
                await _append(msg, "\n".join(self.notes))
            if ev.shown:
                if self.own_side_view:  # the side view shows this answer's sources
                    for old in cl.user_session.get("side_elements") or []:
                        await old.remove()
                msg.elements, names = await _source_elements(ev)
                if self.own_side_view:
                    cl.user_session.set("side_elements", msg.elements)
                await _append(msg, f"**Sources:** {names}")
        elif isinstance(ev, pl.Done):
            self.text = ev.text
            await _append(msg, _footer(ev))
        elif isinstance(ev, pl.Failed):
            await _append(msg, f"**Error:** {ev.text}")

    async def close(self) -> None:
        if self.msg.content or self.msg.elements:
            await self.msg.send()


async def _show_retrieval(ev: pl.Retrieved) -> None:
    async with cl.Step(name="Retrieval", type="retrieval", language="text", show_input="text") as step:
        step.input = ev.query  # a follow-up shows the query built from the conversation
        step.output = _retrieval_text(ev)


def _remember(question: str, text: str) -> None:
    if text:
        history: list = cl.user_session.get("history")
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
        cl.user_session.set("history", history[-12:])


async def _answer(question: str) -> None:
    if (cl.user_session.get("compare") or OFF) != OFF:
        await _compare(question)
        return
    opts: pl.Options = cl.user_session.get("options")
    control = pl.Control()
    cl.user_session.set("control", control)
    view = _AnswerView()
    async for ev in pl.answer(question, cl.user_session.get("history"), opts, control):
        if isinstance(ev, pl.Retrieved):
            await _show_retrieval(ev)
        else:
            await view.show(ev)
    await view.close()
    _remember(question, view.text)


async def _compare(question: str) -> None:
    """Two answers to one question, streaming at once from the same passages, and a verdict."""
    from rag.compare import SIDES, Side, Verdict, compare, parse_choice

    a: pl.Options = cl.user_session.get("options")
    engine_b, model_b = parse_choice(cl.user_session.get("compare"), list(registry.ENGINES))
    b = replace(a, engine=engine_b, model=model_b)
    control = pl.Control()
    cl.user_session.set("control", control)
    quote, views, before = "", {}, _AnswerView()  # before: what comes before the two answers (nothing found...)

    async def open_views() -> None:
        for side, o in zip(SIDES, (a, b)):
            title = f"**{side} · {await _choice_label(o.engine, o.model)}**\n\n"
            views[side] = _AnswerView(title + quote, own_side_view=False)
            await views[side].start()

    async for ev in compare(question, cl.user_session.get("history"), a, b, control):
        if isinstance(ev, pl.Retrieved):
            await _show_retrieval(ev)
        elif isinstance(ev, pl.Quoted):
            quote = _quote_text(ev) + "\n\n"
        elif isinstance(ev, Side):
            if not views:
                await open_views()
            await views[ev.side].show(ev.event)
        elif isinstance(ev, Verdict):
            for view in views.values():
                await view.close()
            await cl.Message(content=f"**Compared:** {ev.text}").send()
        else:  # before the models: a notice, or the documents do not answer (nothing to compare)
            await before.show(ev)
    await before.close()
    _remember(question, views["A"].text if "A" in views else "")


@cl.on_stop
async def on_stop() -> None:
    control = cl.user_session.get("control")
    if control:
        await control.cancel()
