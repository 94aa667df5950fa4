"""Local RAG Chat: the Chainlit handlers. Rendering only: everything else is rag.pipeline.

Process-wide state (the library, the engines) has one owner each (rag.library / engines.registry);
per-chat choices live in cl.user_session ("options", "history", "control").
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace

from rag.config import offline_env, settings  # noqa: E402

offline_env()  # before Chainlit or anything else can import Hugging Face code

import chainlit as cl  # noqa: E402
import chainlit.server as cl_server  # noqa: E402
from chainlit.config import config as cl_config  # noqa: E402

from engines import registry  # noqa: E402
from rag import pipeline as pl  # noqa: E402
from rag.api import mount as mount_api  # noqa: E402
from rag.browser import mount as mount_browser  # noqa: E402
from rag import markup, owners, watch  # noqa: E402
from rag.jobs import here as jobs_here  # noqa: E402
from rag.chat import auth, hardening, history, library_view, panel, render, state  # noqa: E402
from rag.chat.identity import chat_user  # noqa: E402
from rag.ingest.loaders import formats  # noqa: E402

log = logging.getLogger("local-rag-chat")
log.setLevel(logging.INFO)
_warm_task: asyncio.Task | None = None

# ------------------------------------------------------------------ process start: warm models
async def _warm() -> None:
    """Load the index + embedder and the default engine's model once, in the background."""
    t = time.perf_counter()
    try:
        await pl.warm_library()
        name = await pl.warm_engine()
        log.info("warm: library and %s ready in %.1fs", f"{name} engine" if name else "no model (quote only)",
                 time.perf_counter() - t)
    except Exception as exc:  # the chat reports problems when they matter; never crash the server
        log.warning("warm-up failed: %s", exc)


@cl.on_app_startup
async def startup() -> None:
    global _warm_task
    if settings().warmup:
        _warm_task = asyncio.create_task(_warm())
    await asyncio.to_thread(watch.start_background)  # LRC_WATCH's folders, followed in a thread of their own (rag.watch)
    if settings().server_jobs:  # queued ingest jobs (what a restart interrupted): a niced `rag worker` (rag.jobs.here)
        await asyncio.to_thread(jobs_here.start_server_worker)


# ------------------------------------------------------------------ the page: nothing from the internet
# Chainlit's page links the KaTeX stylesheet on a public CDN and preconnects to Google Fonts (the theme sets
# no web font): the browser would contact both on every load. The KaTeX link points at the app's own copy
# (/browser/katex/, `make browser-setup`) and every other outside link is dropped where the page is made
# (Chainlit's page route calls this module-level function for each load). docs/SECURITY.md
_KATEX_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/katex@[0-9.]+/dist/")
_EXTERNAL_LINK = re.compile(r"[ \t]*<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*>\n?", re.S)
_chainlit_page = cl_server.get_html_template


def _local_page(root_path: str) -> str:
    from rag.browser.assets import katex_installed

    page = _chainlit_page(root_path)
    if katex_installed():
        page = _KATEX_CDN.sub(f"{root_path}/browser/katex/", page)
    return _EXTERNAL_LINK.sub("", page)


cl_server.get_html_template = _local_page

# The OpenAI-compatible API (/v1: models, chat completions, embeddings) on the chat's own server, in front
# of Chainlit's catch-all page route (rag.api.mount puts it there).
mount_api(cl_server.app)
# The in-browser model page (/browser: rag.browser; the model runs in the user's browser).
mount_browser(cl_server.app)

# Who may use the chat (rag.chat.auth: refuses a non-local host without a login) and the chat history
# (rag.chat.history: SQLite in the data folder, source elements on local disk, another user's chat "not found").
auth.install(cl_config.run.host)
if settings().history:
    cl.data_layer(history.create_layer)
    history.mount(cl_server.app)

# The guard in front of every route and socket (rag.chat.hardening: Host and Origin checks, JSON only, session
# ids that are UUIDs, thread sharing and feedback, security headers; docs/SECURITY.md).
hardening.install(cl_server.app, cl_config.run.host, _local_page(cl_config.run.root_path or ""))



@cl.on_settings_update
async def settings_update(values: dict) -> None:
    old = state.options()
    new = old.updated(values)  # the panel's values of the pipeline's choices (Options.choices())
    (models, problem), compare_items = await asyncio.gather(panel.try_models(new.engine), panel.compare_items())
    if problem:  # back to the previous engine; if that is "auto" with bad rules too, to the default engine
        back = old.engine if old.engine != new.engine else settings().engine
        new.engine, new.model = back, old.model if back == old.engine else ""
        models, _ = await panel.try_models(back)
        await cl.Message(content=f"{problem}\n\nStill using **{panel.engine_label(back)}**.").send()
        models = models or {"(engine default)": panel.DEFAULT}
    if new.engine != old.engine and new.model not in models.values():
        new.model = ""
    compare = str(values.get("compare", cl.user_session.get("compare") or panel.OFF))
    scope = str(values.get("scope", cl.user_session.get("scope") or "all"))
    cl.user_session.set("scope", scope)
    new.scope = state.search_scope(scope)
    await panel.send_settings(new, models, compare, compare_items)
    state.set_options(new)
    cl.user_session.set("compare", compare)
    await state.save()



# ------------------------------------------------------------------ chat start
async def _add_guide(empty: bool) -> None:
    """The bundled user guide (docs_corpus/) into the library, unless the user removed it (a message only
    when something is indexed); ``empty``: the library holds no passage yet (the first start)."""
    title = "First start: indexing the user guide" if empty else "Adding the user guide"
    await render.run_ingest(pl.ensure_guide(lib=pl.library), f"{title} (`{settings().docs_corpus.name}/`)")


async def _settings_panel(opts: pl.Options, first: str) -> None:
    """The settings panel for this chat's options; says so when the engine cannot be used."""
    (models, problem), compare_items = await asyncio.gather(panel.try_models(opts.engine), panel.compare_items())
    if problem:
        await cl.Message(content=f"{first} {problem}").send()
        models = {"(engine default)": panel.DEFAULT}
    await panel.send_settings(opts, models, cl.user_session.get("compare") or panel.OFF, compare_items)


@cl.on_chat_start
async def start() -> None:
    opts = state.begin()
    before, unavailable = await pl.library_status()  # a shared library's database may be down: the chat starts
    if before is not None:
        await _add_guide(empty=not before.chunks)
    await cl.context.emitter.set_commands([LIBRARY_COMMAND])
    await _settings_panel(opts, "The default engine is not ready.")
    try:
        stats = None if unavailable else await asyncio.to_thread(lambda: pl.library().stats())
        guide = bool(stats) and await pl.guide_present(lib=pl.library)
    except pl.StoreError as exc:
        unavailable, stats, guide = str(exc), None, False
    actions = [cl.Action(name="library_open", payload={}, label="Library")]
    if guide:  # the example questions are about the guide: offered only while it is in the library
        actions += [cl.Action(name="starter", payload={"question": q}, label=q) for q in STARTERS]
    holds = (f"Your library holds **{stats.files} files** (**{stats.chunks} passages**)." if stats else
             f"**The library is unavailable:** {unavailable} Answers use no documents until it is back.")
    await cl.Message(content=(
        f"**Welcome to Local RAG Chat.** {holds} Ask a question about them: answers cite their sources like [1].\n\n"
        f"To add documents, drop {formats.spoken_list()} into the chat (or use "
        "the paperclip), or run `python -m rag index PATH`. **Library** lists them (re-index, remove). "
        "The gear button next to the message box changes the engine, model and retrieval settings for "
        "this chat. [In-browser model](/browser): the small model answering in this browser "
        "(ONNX Runtime Web, nothing leaves the app)." + (" Or try one of these:" if guide else "")),
        actions=actions).send()


LIBRARY_COMMAND = {"id": "Library", "icon": "library", "description": "Your documents: list, re-index, remove",
                   "button": True, "persistent": False}
EARLIER_COMMAND = {"id": "Earlier", "icon": "history", "description": "The earlier messages of this chat, not shown",
                   "button": True, "persistent": False}


# Example questions about docs_corpus/. Chainlit hides its starters once the chat holds a message, and
# the welcome is one, so they are buttons on the welcome message instead.
STARTERS = ["How do I add documents to the library?", "How do I use Phi-4-mini with the in-process engine?",
            "How do I connect a Foundry Local endpoint?", "Does Local RAG Chat send my documents to the internet?"]


@cl.on_chat_resume
async def resume(thread: dict) -> None:
    """A chat opened again from the sidebar: Chainlit shows its messages; its choices come back here."""
    metadata = history.thread_metadata(thread)
    opts = state.begin(metadata.get("lrc"))
    cl.user_session.set("side_elements", history.latest_sources_only(thread))
    earlier = history.newest_messages(thread)  # a long chat opens with its newest messages
    cl.user_session.set("earlier", len(earlier))
    await cl.context.emitter.set_commands([LIBRARY_COMMAND] + ([EARLIER_COMMAND] if earlier else []))
    await _settings_panel(opts, "This chat's engine is not ready.")
    # Chainlit next sends the thread to the page, which fills the settings panel from its saved values
    metadata["chat_settings"] = cl.context.session.chat_settings
    thread["metadata"] = metadata


@cl.action_callback("starter")
async def starter(action: cl.Action) -> None:
    question = action.payload["question"]
    cl.user_session.set("asked_at", time.perf_counter())
    await cl.Message(content=question, author="You", type="user_message").send()
    await history.name_chat(question)  # the chat list shows the question, not the button's name
    await _answer(question)


# ------------------------------------------------------------------ messages

@cl.on_message
async def on_message(message: cl.Message) -> None:
    cl.user_session.set("asked_at", time.perf_counter())
    if message.command == "Library":
        await library_view.show_library()
        if not (message.content or "").strip() and not message.elements:
            return
    if message.command == "Earlier":
        text = await history.earlier_messages(cl.user_session.get("earlier") or 0)
        await cl.Message(content=f"**Earlier messages of this chat:**\n\n{markup.neutralise(text)}").send()
        return
    files = [(e.path, e.name) for e in (message.elements or []) if getattr(e, "path", None)]
    if files:
        report = await render.run_ingest(pl.ingest_uploads(files, lib=pl.library, uploads_dir=owners.uploads_dir(chat_user())),
                                         f"Indexing {len(files)} file(s)")
        if report is not None:
            await _add_chat_files([*report.added, *report.updated, *report.unchanged])
    question = (message.content or "").strip()
    if question:
        await history.name_chat(question, only_placeholder=True)  # a chat begun with a button
        await _answer(question)


# ------------------------------------------------------------------ per-chat scope

async def _add_chat_files(paths: list[str]) -> None:
    files = list(dict.fromkeys([*(cl.user_session.get("chat_files") or []), *map(str, paths)]))
    cl.user_session.set("chat_files", files)
    opts = state.options()
    if (cl.user_session.get("scope") or "all") == "chat":
        opts.scope = state.search_scope("chat")
    elif paths:
        await cl.Message(content=f"Questions in this chat search all your documents. To search only the "
                                 f"{len(files)} file(s) dropped into this chat:",
                         actions=[cl.Action(name="scope_chat", payload={}, label="Search only this chat's files")]).send()
    await state.save()


@cl.action_callback("scope_chat")
async def scope_chat(action: cl.Action) -> None:
    opts = state.options()
    cl.user_session.set("scope", "chat")
    opts.scope = state.search_scope("chat")
    await panel.resend_settings(opts)
    await state.save()
    await cl.Message(content=f"This chat now searches only its own {len(opts.scope)} file(s) (the gear "
                             f"button's *Search* switches back).").send()



async def _answer(question: str) -> None:
    await render.retire_sources()
    async with history.answering():  # the chat history is written once the answer is
        if (cl.user_session.get("compare") or panel.OFF) != panel.OFF:
            await _compare(question)
        else:
            await _answer_one(question)
    await state.save()


async def _answer_one(question: str) -> None:
    opts = replace(state.options(), client=f"chat:{cl.context.session.id}")  # its place in the engine's line
    control = pl.Control()
    cl.user_session.set("control", control)
    view = render.AnswerView()
    async for ev in pl.answer(question, cl.user_session.get("history"), opts, control, lib=pl.library):
        if isinstance(ev, pl.Retrieved):
            await render.show_retrieval(ev)
        else:
            await view.show(ev)
    log.info("answered in %.0f ms (from the question to the answer's last text)",
             (time.perf_counter() - (cl.user_session.get("asked_at") or 0)) * 1000)
    await view.close()
    state.remember(question, view.text)


async def _compare(question: str) -> None:
    """Two answers to one question, streaming at once from the same passages, and a verdict."""
    from rag.compare import SIDES, Side, Verdict, compare, parse_choice

    a = replace(state.options(), client=f"chat:{cl.context.session.id}")
    engine_b, model_b = parse_choice(cl.user_session.get("compare"), list(registry.ENGINES))
    b = replace(a, engine=engine_b, model=model_b)
    control = pl.Control()
    cl.user_session.set("control", control)
    quote, views, before = "", {}, render.AnswerView()  # before: what comes before the two answers (nothing found...)

    async def open_views() -> None:
        await before.drop_place()  # the place heard on arrival (rag.scheduler): the sides say theirs
        for side, o in zip(SIDES, (a, b)):
            title = f"**{side} · {await panel.choice_label(o.engine, o.model)}**\n\n"
            views[side] = render.AnswerView(title + quote)
            await views[side].start()

    async for ev in compare(question, cl.user_session.get("history"), a, b, control, lib=pl.library):
        if isinstance(ev, pl.Retrieved):
            await render.show_retrieval(ev)
        elif isinstance(ev, pl.Quoted):
            quote = render.quote_text(ev) + "\n\n"
        elif isinstance(ev, Side):
            if not views:
                await open_views()
            await views[ev.side].show(ev.event)
        elif isinstance(ev, Verdict):
            for view in views.values():
                await view.close()
            await cl.Message(content=f"**Compared:** {markup.neutralise(ev.text)}").send()
        else:  # before the models: a notice, or the documents do not answer (nothing to compare)
            await before.show(ev)
    await before.close()
    state.remember(question, views["A"].text if "A" in views else "")


@cl.on_app_shutdown
async def shutdown() -> None:
    await history.flush()  # what the last answers left queued
    await asyncio.to_thread(watch.stop_background)
    await asyncio.to_thread(jobs_here.stop_server_worker)
    await registry.close_all()  # the engines' workers, one being started by the warm-up included


@cl.on_stop
async def on_stop() -> None:
    control = cl.user_session.get("control")
    if control:
        await control.cancel()
