"""One chat's choices (engine, model, retrieval and answer settings, comparison, search scope, its dropped
files, the conversation the model sees) in cl.user_session, and saved with the chat's history (thread
metadata "lrc") so a chat opened again from the sidebar continues as it was left. The answer settings kept
are the pipeline's choices (``Options.choices()``), written by ``Options.saved`` and read by ``updated``."""
from __future__ import annotations

import logging

import chainlit as cl

from rag import pipeline as pl
from rag.chat.identity import chat_user

log = logging.getLogger("local-rag-chat.state")
OFF = "off"  # "Compare with": no comparison


def options() -> pl.Options:
    return cl.user_session.get("options")


def search_scope(choice: str) -> tuple[str, ...] | None:
    """The files a chat's questions search: None (the whole library) or the files dropped into it."""
    return tuple(cl.user_session.get("chat_files") or ()) if choice == "chat" else None


def begin(saved: dict | None = None) -> pl.Options:
    """Set up the session: fresh defaults, or a resumed chat's saved choices (unknown values fall back
    to the defaults: a model removed since then is caught by the settings panel)."""
    saved = saved or {}
    opts = pl.Options().updated(saved.get("settings") or {})
    cl.user_session.set("chat_files", [str(p) for p in saved.get("chat_files", [])])
    cl.user_session.set("scope", saved.get("scope") if saved.get("scope") in ("all", "chat") else "all")
    cl.user_session.set("compare", str(saved.get("compare") or OFF))
    cl.user_session.set("history", [m for m in saved.get("history", []) if isinstance(m, dict)][-12:])
    opts.scope = search_scope(cl.user_session.get("scope"))
    opts.user = chat_user()
    cl.user_session.set("options", opts)
    return opts


def set_options(opts: pl.Options) -> None:
    opts.user = chat_user()
    cl.user_session.set("options", opts)


def snapshot() -> dict:
    opts = options()
    return {"settings": opts.saved(),
            "compare": cl.user_session.get("compare") or OFF, "scope": cl.user_session.get("scope") or "all",
            "chat_files": list(cl.user_session.get("chat_files") or []),
            "history": list(cl.user_session.get("history") or [])}


async def save() -> None:
    """Write the choices into the chat's history entry (once the chat is in the history: after its
    first message). Persisting never breaks the chat: a failure is logged."""
    from chainlit.context import context
    from chainlit.data import get_data_layer

    layer, session = get_data_layer(), context.session
    if layer is None or not getattr(session, "has_first_interaction", False):
        return
    try:
        await layer.update_thread(session.thread_id, metadata={"lrc": snapshot()})
    except Exception as exc:  # the answer is shown already; the next save tries again
        log.warning("could not save the chat's settings: %s", exc)


def remember(question: str, text: str) -> None:
    if text:
        history: list = cl.user_session.get("history")
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
        cl.user_session.set("history", history[-12:])
