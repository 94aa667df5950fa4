"""The Library view: a table of the documents this chat's user may see (name, type, pages, passages,
size, when added, embedding model) with Re-index and Remove on the ones they may manage (rag.catalog),
and the folders the server watches (LRC_WATCH, rag.watch) with their state. Without logins (this machine
only) the user may watch another folder of the server and stop watching one added here
(``library_watch``, ``library_unwatch``); with logins the folders are the administrator's (LRC_WATCH).
Below them, the background ingest jobs (rag.jobs) this user may see, each with its progress and a Cancel
(``library_cancel_job``).

It is a Chainlit custom element (public/elements/LibraryView.jsx) in a message of its own: its buttons
call the actions below (``library_remove``, ``library_reindex``, ``library_refresh``; ``library_open``
sends a new view), which do the work through rag.pipeline and push new props to the element — progress
while re-indexing, then the refreshed table and what happened. Importing this module registers the
actions; ``show_library()`` sends a view into the current chat.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from hashlib import sha256

import chainlit as cl

from rag import jobs, pipeline as pl
from rag import watch
from rag.chat.identity import chat_user

ELEMENT = "LibraryView"  # public/elements/LibraryView.jsx
VIEWS = "library_views"  # user_session: view id -> its CustomElement
SHARED = "Shared documents are read-only here: the administrator manages them with python -m rag remove."
_STAGES = {"loading": 0.2, "embedding": 0.5, "saving": 0.9}  # how far a file is at each progress stage


# ------------------------------------------------------------------ the table's rows
def _row_id(path: str) -> str:
    """A row's id in the page: the browser never sends a path back, only an id looked up here."""
    return sha256(path.encode()).hexdigest()[:16]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _passages(n: int) -> str:
    return f"{n} passage{'' if n == 1 else 's'}"


def _when(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts).strftime(fmt) if ts else ""


def _row(d: pl.LibraryDocument) -> dict:
    tag = "user guide" if d.guide else ("uploaded" if d.stored else "")
    return {"id": _row_id(d.path), "name": d.name, "kind": d.kind or "?", "pages": d.pages, "passages": d.passages,
            "size": _size(d.size), "added": _when(d.added, "%Y-%m-%d"), "addedAt": _when(d.added, "%Y-%m-%d %H:%M:%S"),
            "model": d.model.split("|", 1)[0], "modelId": d.model, "manageable": d.manageable, "tag": tag}


_FOLDER_STATES = {"starting": "starting…", "syncing": "syncing…", "watching": "watching",
                  "missing": "missing: its documents are kept", "stopped": "stopped"}


def watched_folders(with_paths: bool = True) -> list[dict]:
    """The server's watched folders for the view: path (only the folder's name when ``with_paths`` is
    False: with logins), state in words, documents the library holds from it, whether it was added here
    (``removable``: the view may stop watching it)."""
    watcher = watch.background()
    if watcher is None:
        return []
    added = {str(p) for p in watch.added_folders()} if with_paths else set()
    return [{"id": _row_id(f.path), "path": f.path if with_paths else f.path.rstrip("/").rsplit("/", 1)[-1],
             "state": f.state, "text": _FOLDER_STATES.get(f.state, f"{f.state}: {f.last}"), "files": f.files,
             "removable": f.path in added}
            for f in watcher.status()]


_JOB_STATES = {jobs.QUEUED: "queued", jobs.RUNNING: "running", jobs.DONE: "done", jobs.FAILED: "failed",
               jobs.CANCELLED: "cancelled"}


def _job_row(j: jobs.Job) -> dict:
    names = [j.display_names.get(p) or p.rstrip("/").rsplit("/", 1)[-1] for p in j.paths]
    what = names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "") if names else "?"
    state = "stopping after its batch" if j.state == jobs.RUNNING and j.cancel_requested else _JOB_STATES.get(j.state, j.state)
    current = (j.display_names.get(j.current) or j.current.rsplit("/", 1)[-1]) if j.current else ""
    return {"id": str(j.id), "what": what, "state": j.state, "text": state, "progress": f"{j.progress()} files" if j.files_total else "",
            "current": current if j.state == jobs.RUNNING else "", "detail": j.error or j.summary,
            "cancellable": not j.finished and not j.cancel_requested}


def background_jobs(user: str | None, recent: int = 3) -> list[dict]:
    """The library's ingest jobs (rag.jobs: `rag index --background`, run by `rag worker`) this user may see
    and cancel: all without logins (this machine only), else their own. Waiting and running ones, then the
    last ``recent`` finished."""
    queue = jobs.open_queue(pl.library())
    try:
        mine = [j for j in queue.jobs(limit=50) if user is None or j.owner == user]
    finally:
        queue.close()
    return [_job_row(j) for j in [j for j in mine if not j.finished] + [j for j in mine if j.finished][:recent]]


def cancel_job(user: str | None, job_id: str) -> str:
    """Cancel one of this user's jobs (see ``background_jobs``); what happened, in words."""
    queue = jobs.open_queue(pl.library())
    try:
        try:
            job = queue.get(int(job_id))
        except (ValueError, jobs.JobNotFound):
            raise LookupError("That job is not in the queue any more.") from None
        if user is not None and job.owner != user:
            raise PermissionError("That job is not yours.")
        job = queue.cancel(job.id)
    finally:
        queue.close()
    if job.state == jobs.CANCELLED:
        return f"Cancelled job {job.id}: what it saved stays in the library."
    if job.state == jobs.RUNNING:
        return f"Job {job.id} stops after the batch it is embedding; what it saved stays in the library."
    return f"Job {job.id} had already finished ({_JOB_STATES.get(job.state, job.state)})."


async def _props(view: str, note: str = "", error: str = "", busy: dict | None = None) -> dict:
    docs = await pl.documents(chat_user(), lib=pl.library)
    passages = sum(d.passages for d in docs)
    title = f"Library: {len(docs)} document{'' if len(docs) == 1 else 's'}, {_passages(passages)}"
    return {"view": view, "title": title, "model": docs[0].model.split("|", 1)[0] if docs else "",
            "rows": [_row(d) for d in docs], "watched": watched_folders(with_paths=chat_user() is None),
            "canWatch": chat_user() is None, "jobs": await asyncio.to_thread(background_jobs, chat_user()),
            "note": note, "error": error, "busy": busy, "readOnly": SHARED}


async def _push(element: cl.CustomElement, props: dict) -> None:
    element.props = props
    element.content = json.dumps(props)  # what a data layer stores for the element
    await element.update()


async def show_library() -> None:
    """Send the Library view into the current chat."""
    view = str(uuid.uuid4())
    try:
        props = await _props(view)
    except pl.StoreError as exc:  # a shared library's database is down: say so instead of failing
        await cl.Message(content=f"**The library is unavailable:** {exc}").send()
        return
    element = cl.CustomElement(id=view, name=ELEMENT, display="inline", props=props)
    await cl.Message(content="", elements=[element]).send()
    views = cl.user_session.get(VIEWS) or {}
    views[view] = element
    cl.user_session.set(VIEWS, views)


# ------------------------------------------------------------------ the buttons
async def _target(action: cl.Action) -> tuple[cl.CustomElement | None, pl.LibraryDocument | None]:
    """(the view the click came from, the document of the clicked row among those this user may see)."""
    element = (cl.user_session.get(VIEWS) or {}).get(str(action.payload.get("view", "")))
    row = str(action.payload.get("id", ""))
    doc = next((d for d in await pl.documents(chat_user(), lib=pl.library) if _row_id(d.path) == row), None) if row else None
    return element, doc


async def _acted_on(action: cl.Action):
    """(view, document) of a Remove or Re-index click; the document is None when there is nothing to do
    (said in the view, or a fresh view sent for one from before a restart)."""
    element, doc = await _target(action)
    if element is None:
        await show_library()
        return None, None
    if doc is None:
        await _push(element, await _props(element.id, error="That document is not in the library any more."))
    return element, doc


@cl.action_callback("library_open")
async def library_open(action: cl.Action) -> None:
    await show_library()


@cl.action_callback("library_refresh")
async def library_refresh(action: cl.Action) -> None:
    element, _ = await _target(action)
    if element is None:  # a view from before a server restart: send a fresh one
        await show_library()
    else:
        await _push(element, await _props(element.id))


@cl.action_callback("library_remove")
async def library_remove(action: cl.Action) -> dict:
    element, doc = await _acted_on(action)
    if doc is None:
        return {"ok": False}
    busy = {"id": _row_id(doc.path), "action": "remove", "text": f"Removing {doc.name}…", "percent": 50}
    await _push(element, {**element.props, "note": "", "error": "", "busy": busy})
    try:
        removed = await pl.remove_document(doc.path, chat_user(), lib=pl.library)
    except (LookupError, PermissionError) as err:  # gone meanwhile, or not this user's: say so
        await _push(element, await _props(element.id, error=str(err)))
        return {"ok": False}
    except Exception as err:  # e.g. the stored copy could not be deleted: never leave the view busy
        await _push(element, await _props(element.id, error=f"Removing {doc.name} failed: {err}"))
        raise
    note = f"Removed {removed.name}: {_passages(removed.passages)}."
    if removed.deleted_copy:
        note += " Its stored copy was deleted."
    if removed.guide:
        note += " The user guide will not be added back by itself (index docs_corpus/ again to restore it)."
    await _push(element, await _props(element.id, note=note))
    return {"ok": True}


async def _view_action(action: cl.Action, do, local_only: bool = False) -> dict:
    """Run ``do()`` (-> the note to show) in a thread for a click in a view (files, the queue's database: off
    the event loop); its readable error, if any, is shown instead. ``local_only``: without logins only (the
    user is on this machine)."""
    element = (cl.user_session.get(VIEWS) or {}).get(str(action.payload.get("view", "")))
    if element is None:  # a view from before a server restart: send a fresh one
        await show_library()
        return {"ok": False}
    note = error = ""
    try:
        if local_only and chat_user() is not None:
            raise PermissionError("With logins, the watched folders are the administrator's setting (LRC_WATCH).")
        note = await asyncio.to_thread(do)
    except (ValueError, LookupError, PermissionError) as err:
        error = str(err)
    await _push(element, await _props(element.id, note=note, error=error))
    return {"ok": not error}


@cl.action_callback("library_watch")
async def library_watch(action: cl.Action) -> dict:
    """Watch a folder of the server, now and after a restart."""
    def do() -> str:
        root = watch.watch_folder(str(action.payload.get("path", "")))
        return f"Watching {root}: its documents are being added."
    return await _view_action(action, do, local_only=True)


@cl.action_callback("library_unwatch")
async def library_unwatch(action: cl.Action) -> dict:
    """Stop watching a folder added in the view (its documents stay)."""
    def do() -> str:
        row = str(action.payload.get("id", ""))
        folder = next((f["path"] for f in watched_folders() if f["id"] == row and f["removable"]), None)
        if folder is None:
            raise LookupError("That folder is not one watched from here.")
        watch.unwatch_folder(folder)
        return f"Stopped watching {folder}; its documents stay in the library."
    return await _view_action(action, do, local_only=True)


@cl.action_callback("library_cancel_job")
async def library_cancel_job(action: cl.Action) -> dict:
    """Cancel a background ingest job of this user's (a queued one never runs; a running one stops after
    its batch)."""
    user, job = chat_user(), str(action.payload.get("id", ""))
    return await _view_action(action, lambda: cancel_job(user, job))


@cl.action_callback("library_reindex")
async def library_reindex(action: cl.Action) -> dict:
    element, doc = await _acted_on(action)
    if doc is None:
        return {"ok": False}
    row, base = _row_id(doc.path), {**element.props, "note": "", "error": ""}
    note, error, last = "", "", 0.0
    busy = {"id": row, "action": "reindex", "text": f"Re-indexing {doc.name}…", "percent": 2}
    await _push(element, {**base, "busy": busy})
    try:
        async for ev in pl.reindex(doc.path, chat_user(), lib=pl.library):
            if isinstance(ev, pl.Progress) and time.monotonic() - last > 0.3:
                p, last = ev.progress, time.monotonic()
                stage = 0.2 * p.step / max(1, p.steps) if p.stage == "ocr" else _STAGES.get(p.stage, 0)
                percent = round(100 * (p.done + stage) / max(1, p.total))
                doing = p.describe().removesuffix(f" of {p.file}") if p.stage == "ocr" else p.stage
                busy = {**busy, "percent": min(percent, 99), "text": f"Re-indexing {doc.name}: {doing}…"}
                await _push(element, {**base, "busy": busy})
            elif isinstance(ev, pl.Ingested):
                r = ev.report
                if r.failed:
                    error = f"{doc.name} could not be re-indexed: {r.failed[0][1]} (its passages are kept)."
                else:
                    note = f"Re-indexed {doc.name}: {_passages(r.chunks_added)} in {r.seconds:.1f} s."
            elif isinstance(ev, pl.Failed):
                error = ev.text
    except (LookupError, PermissionError) as err:
        error = str(err)
    except Exception as err:  # never leave the view busy
        error = f"Re-indexing {doc.name} failed: {err}"
    await _push(element, await _props(element.id, note=note, error=error))
    return {"ok": not error}
