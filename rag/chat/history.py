"""Past chats in a real database: Chainlit's SQLAlchemy data layer on a SQLite file in the data folder
(``history.sqlite3``, created and migrated here), and its elements (source passages, PDFs) on local disk
(``history/``), served back only to the user whose chat they belong to.

What is kept: every message and step, the source elements, and each chat's settings (thread metadata,
written by app.py). Nothing here leaves the machine.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient
from chainlit.element import ElementDict
from chainlit.types import PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse
from sqlalchemy import event

from rag.config import settings
from rag.dbfile import use_wal

log = logging.getLogger("local-rag-chat.history")
DB_NAME = "history.sqlite3"
FILES_ROUTE = "/history/file"

# The tables and columns Chainlit's SQLAlchemy layer writes (each column name as it spells it). A new
# column in a later Chainlit is added by migrate(): listed here, it is created on the next start.
TABLES: dict[str, list[str]] = {
    "users": ['"id" TEXT PRIMARY KEY', '"identifier" TEXT NOT NULL UNIQUE', '"createdAt" TEXT',
              '"metadata" TEXT NOT NULL DEFAULT \'{}\''],
    "threads": ['"id" TEXT PRIMARY KEY', '"createdAt" TEXT', '"name" TEXT', '"userId" TEXT', '"userIdentifier" TEXT',
                '"tags" TEXT', '"metadata" TEXT'],
    "steps": ['"id" TEXT PRIMARY KEY', '"name" TEXT', '"type" TEXT', '"threadId" TEXT', '"parentId" TEXT',
              '"command" TEXT', '"modes" TEXT', '"streaming" INTEGER', '"waitForAnswer" INTEGER', '"isError" INTEGER',
              '"metadata" TEXT', '"tags" TEXT', '"input" TEXT', '"output" TEXT', '"createdAt" TEXT', '"start" TEXT',
              '"end" TEXT', '"generation" TEXT', '"showInput" TEXT', '"defaultOpen" INTEGER',
              '"autoCollapse" INTEGER', '"language" TEXT', '"icon" TEXT'],
    "elements": ['"id" TEXT PRIMARY KEY', '"threadId" TEXT', '"type" TEXT', '"chainlitKey" TEXT', '"url" TEXT',
                 '"objectKey" TEXT', '"name" TEXT', '"display" TEXT', '"size" TEXT', '"language" TEXT',
                 '"page" INTEGER', '"props" TEXT', '"autoPlay" INTEGER', '"playerConfig" TEXT', '"forId" TEXT',
                 '"mime" TEXT'],
    "feedbacks": ['"id" TEXT PRIMARY KEY', '"forId" TEXT', '"threadId" TEXT', '"value" INTEGER', '"comment" TEXT'],
}
INDEXES = ['CREATE INDEX IF NOT EXISTS threads_user ON threads("userId")',
           'CREATE INDEX IF NOT EXISTS steps_thread ON steps("threadId")',
           'CREATE INDEX IF NOT EXISTS elements_thread ON elements("threadId")',
           'CREATE INDEX IF NOT EXISTS feedbacks_step ON feedbacks("forId")']


def migrate(db: Path) -> None:
    """Create the tables, or add the columns an older file lacks (never drops anything)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as c:
        use_wal(c)
        for table, columns in TABLES.items():
            have = {row[1] for row in c.execute(f"PRAGMA table_info({table})")}
            if not have:
                c.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
                continue
            for col in columns:
                name = col.split('"')[1]
                if name not in have:  # ALTER TABLE cannot add a PRIMARY KEY/UNIQUE column: none is ever new
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {col.split(' PRIMARY')[0]}")
        for statement in INDEXES:
            c.execute(statement)


# ------------------------------------------------------------------ elements on local disk
class LocalStorage(BaseStorageClient):
    """Element files under ``root``: ``blobs/<sha256>`` holds each content once (a PDF cited by many
    answers is stored once), ``keys/<sha256 of the object key>`` is a hard link to it, and a ``.json``
    beside it keeps the MIME type. Read URLs point at FILES_ROUTE, which checks the owner."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "keys").mkdir(parents=True, exist_ok=True)

    def key_path(self, object_key: str) -> Path:
        return self.root / "keys" / hashlib.sha256(object_key.encode()).hexdigest()

    def _put(self, object_key: str, data: bytes, mime: str) -> None:
        digest = hashlib.sha256(data).hexdigest()
        blob = self.root / "blobs" / digest
        if not blob.exists():
            tmp = blob.with_name(f"{digest}.{uuid.uuid4().hex}.part")
            tmp.write_bytes(data)
            tmp.replace(blob)
        target = self.key_path(object_key)
        self._drop(target)
        os.link(blob, target)
        target.with_suffix(".json").write_text(json.dumps({"mime": mime, "blob": digest}))

    def _drop(self, target: Path) -> bool:
        meta = target.with_suffix(".json")
        if not target.exists():
            return False
        blob = None
        if meta.exists():
            blob = self.root / "blobs" / json.loads(meta.read_text())["blob"]
            meta.unlink()
        target.unlink()
        if blob is not None and blob.exists() and blob.stat().st_nlink == 1:  # no key links to it any more
            blob.unlink()
        return True

    async def upload_file(self, object_key: str, data: bytes | str, mime: str = "application/octet-stream",
                          overwrite: bool = True, content_disposition: str | None = None) -> dict[str, Any]:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        await asyncio.to_thread(self._put, object_key, raw, mime)
        return {"object_key": object_key, "url": await self.get_read_url(object_key)}

    async def delete_file(self, object_key: str) -> bool:
        return await asyncio.to_thread(self._drop, self.key_path(object_key))

    async def get_read_url(self, object_key: str) -> str:
        return f"{FILES_ROUTE}/{object_key_id(object_key)}"

    def open(self, object_key: str) -> tuple[Path, str] | None:
        """(file, MIME type) for an object key, or None."""
        target = self.key_path(object_key)
        meta = target.with_suffix(".json")
        if not target.exists() or not meta.exists():
            return None
        return target, json.loads(meta.read_text()).get("mime") or "application/octet-stream"

    async def close(self) -> None:
        return None


def object_key_id(object_key: str) -> str:
    """The URL form of an object key ("<user id>/<element id>/<name>"): the user and element ids only
    (names may hold any character); the route looks the element up by them."""
    user_id, _, rest = object_key.partition("/")
    return f"{user_id}/{rest.partition('/')[0]}"


# ------------------------------------------------------------------ the data layer
class HistoryLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy layer on SQLite, with: lists and dicts stored as JSON (SQLite binds
    neither), a chat list that does not read every message of every chat, and element lookup for
    FILES_ROUTE."""

    def __init__(self, db: Path, files: Path):
        migrate(db)
        self.storage = LocalStorage(files)
        super().__init__(conninfo=f"sqlite+aiosqlite:///{db}", storage_provider=self.storage, user_thread_limit=1000)
        event.listen(self.engine.sync_engine, "connect", _pragmas)
        self._writes: asyncio.Queue | None = None  # (function, args) in the order Chainlit asked for them
        self._answering = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    # Chainlit persists each message as a task of its own, at once. Here the writes of a chat that is in
    # the history already go through one ordered queue (a message's updates land in order) and wait
    # while an answer is being written (persisting costs the answer nothing; at most MAX_DEFER_S late).
    async def create_step(self, step_dict):  # update_step calls this too
        if _before_first_message():
            return await super().create_step(step_dict)  # Chainlit keeps it until the chat starts
        self._later(_RAW_CREATE_STEP, step_dict)

    async def create_element(self, element):
        if _before_first_message():
            return await super().create_element(element)
        self._later(_RAW_CREATE_ELEMENT, element)

    def _later(self, write, *args) -> None:
        if self._writes is None:
            self._writes = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._write_in_order())
        self._writes.put_nowait((write, args))

    async def _write_in_order(self) -> None:
        while True:
            write, args = await self._writes.get()
            try:
                await asyncio.wait_for(self._quiet.wait(), MAX_DEFER_S)
            except asyncio.TimeoutError:
                pass  # answers without a pause: write anyway
            try:
                await write(self, *args)
            except Exception as exc:  # a failed write is logged; the chat goes on
                log.warning("could not save to the chat history: %s", exc)
            finally:
                self._writes.task_done()

    @contextlib.asynccontextmanager
    async def answering(self):
        """Around an answer: history writes wait until no answer is being written."""
        self._answering += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if not self._answering:
                self._quiet.set()

    async def flush(self, timeout: float = 10.0) -> None:
        """Write what is queued now (before a chat is read or deleted, and at shutdown)."""
        if self._writes is not None and not self._writes.empty():
            self._quiet.set()
            await asyncio.wait_for(self._writes.join(), timeout)

    async def get_thread(self, thread_id: str):
        await self.flush()
        return await super().get_thread(thread_id)

    async def delete_thread(self, thread_id: str):
        await self.flush()
        return await super().delete_thread(thread_id)

    async def update_thread(self, thread_id: str, name: str | None = None, user_id: str | None = None,
                            metadata: dict | None = None, tags: list[str] | None = None):
        """Chainlit names a chat started by a button after the button's action: keep a real name instead
        (a starter question names its chat itself), or call it after what was opened."""
        if name in ACTION_TITLES:
            rows = await self.execute_sql('SELECT "name" FROM threads WHERE "id" = :id', {"id": thread_id})
            named = isinstance(rows, list) and rows and rows[0]["name"] and rows[0]["name"] not in ACTION_TITLES
            name = None if named else ACTION_TITLES[name]
        return await super().update_thread(thread_id, name=name, user_id=user_id, metadata=metadata, tags=tags)

    async def execute_sql(self, query: str, parameters: dict):
        parameters = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in parameters.items()}
        return await super().execute_sql(query, parameters)

    async def list_threads(self, pagination: Pagination, filters: ThreadFilter) -> PaginatedResponse:
        if not filters.userId:
            raise ValueError("userId is required")
        search = f"%{filters.search.lower()}%" if filters.search else None
        rows = await self.execute_sql(
            'SELECT t."id", t."createdAt", t."name", t."userId", t."userIdentifier", t."tags", t."metadata", '
            'MAX(s."createdAt") AS updated FROM threads t LEFT JOIN steps s ON s."threadId" = t."id" '
            'WHERE t."userId" = :user_id AND (:search IS NULL OR lower(t."name") LIKE :search OR EXISTS ('
            'SELECT 1 FROM steps m WHERE m."threadId" = t."id" AND lower(m."output") LIKE :search)) '
            'GROUP BY t."id" ORDER BY updated DESC NULLS LAST LIMIT :limit',
            {"user_id": filters.userId, "search": search, "limit": self.user_thread_limit})
        threads = [ThreadDict(id=r["id"], createdAt=r["createdAt"], name=r["name"], userId=r["userId"],
                              userIdentifier=r["userIdentifier"], tags=None, metadata={}, steps=[], elements=[])
                   for r in (rows if isinstance(rows, list) else [])]
        start = next((i + 1 for i, t in enumerate(threads) if t["id"] == pagination.cursor), 0)
        page = threads[start:start + pagination.first]
        return PaginatedResponse(pageInfo=PageInfo(hasNextPage=len(threads) > start + len(page),
                                                   startCursor=page[0]["id"] if page else None,
                                                   endCursor=page[-1]["id"] if page else None), data=page)

    async def get_element(self, thread_id: str, element_id: str):
        """One element (Chainlit's element page): as the base class, but an element without props is
        fine and its URL is the one the storage gives now."""
        rows = await self.execute_sql('SELECT * FROM elements WHERE "threadId" = :thread_id AND "id" = :element_id',
                                      {"thread_id": thread_id, "element_id": element_id})
        if not isinstance(rows, list) or not rows:
            return None
        e = rows[0]
        url = await self.storage.get_read_url(e["objectKey"]) if e.get("objectKey") else e.get("url")
        return ElementDict(id=e["id"], threadId=e.get("threadId"), type=e["type"], chainlitKey=e.get("chainlitKey"),
                           url=url, objectKey=e.get("objectKey"), name=e["name"], display=e["display"],
                           props=json.loads(e["props"]) if e.get("props") else {}, size=e.get("size"),
                           language=e.get("language"), page=e.get("page"), autoPlay=e.get("autoPlay"),
                           playerConfig=e.get("playerConfig"), forId=e.get("forId"), mime=e.get("mime"))

    async def element_file(self, user_id: str, element_id: str) -> tuple[Path, str] | None:
        """The stored file of an element in one of ``user_id``'s chats, or None."""
        rows = await self.execute_sql(
            'SELECT e."objectKey" FROM elements e JOIN threads t ON t."id" = e."threadId" '
            'WHERE e."id" = :element_id AND t."userId" = :user_id', {"element_id": element_id, "user_id": user_id})
        if not isinstance(rows, list) or not rows or not rows[0]["objectKey"]:
            return None
        return self.storage.open(rows[0]["objectKey"])

    async def thread_owner(self, thread_id: str) -> str | None:
        rows = await self.execute_sql('SELECT "userIdentifier" FROM threads WHERE "id" = :id', {"id": thread_id})
        return rows[0]["userIdentifier"] if isinstance(rows, list) and rows else None

    async def feedback_owner(self, step_id: str | None = None, feedback_id: str | None = None) -> str | None:
        """Whose chat holds the message ``step_id`` (or the message that feedback ``feedback_id`` is on);
        None when there is no such message. Waits for queued writes first (the answer may be that new)."""
        await self.flush()
        if feedback_id is not None:
            rows = await self.execute_sql('SELECT "forId" FROM feedbacks WHERE "id" = :id', {"id": feedback_id})
            step_id = rows[0]["forId"] if isinstance(rows, list) and rows else None
        if step_id is None:
            return None
        rows = await self.execute_sql('SELECT t."userIdentifier" FROM steps s JOIN threads t ON t."id" = s."threadId" '
                                      'WHERE s."id" = :id', {"id": step_id})
        return rows[0]["userIdentifier"] if isinstance(rows, list) and rows else None


def thread_metadata(thread: dict) -> dict:
    """A thread's metadata as a dict (SQLite gives it back as JSON text)."""
    metadata = thread.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = {}
    return metadata if isinstance(metadata, dict) else {}


def latest_sources_only(thread: dict) -> list[dict]:
    """As in a live chat, only the newest answer's sources stay in the side view of a reopened chat (the
    page opens it with every "side" element of the chat: a long chat would load all of its PDFs); the
    older ones open on a page of their own. Returns the newest answer's elements."""
    elements = [e for e in thread.get("elements") or [] if e.get("display") in ("side", "page")]
    order = {s["id"]: i for i, s in enumerate(thread.get("steps") or [])}
    newest = max((e.get("forId") for e in elements), key=lambda f: order.get(f, -1), default=None)
    for e in elements:
        e["display"] = "side" if e.get("forId") == newest else "page"
    return [e for e in elements if e["display"] == "side"]


MAX_DEFER_S = 5.0
ACTION_TITLES = {"starter": "New chat", "scope_chat": "New chat", "library_open": "Library",
                 "library_refresh": "Library", "library_remove": "Library", "library_reindex": "Library"}
_RAW_CREATE_STEP = SQLAlchemyDataLayer.create_step.__wrapped__  # without Chainlit's "wait for the chat" wrapper
_RAW_CREATE_ELEMENT = SQLAlchemyDataLayer.create_element.__wrapped__


def _before_first_message() -> bool:
    """True while the current chat is not in the history yet (Chainlit then queues writes itself)."""
    from chainlit.context import context
    from chainlit.session import WebsocketSession

    try:
        session = context.session
    except Exception:  # no chat (a script, a test): write at once
        return False
    return isinstance(session, WebsocketSession) and not session.has_first_interaction


def _pragmas(connection, _record) -> None:
    """Each connection: wait for another writer instead of failing (a CLI or a second server may write),
    and in WAL mode sync at checkpoints, not at every commit (a crash of the app loses nothing; a power
    cut may lose the last moments of a chat)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SHOWN_MESSAGES = 60  # a reopened chat shows its newest messages: the page renders every message it gets


def newest_messages(thread: dict, limit: int = SHOWN_MESSAGES) -> list[dict]:
    """Keep the newest ``limit`` messages of a reopened chat in ``thread`` (with the steps they belong to
    and their elements), and a note at the top saying how many are not shown (Chainlit's page takes
    ~6 ms per message here: BENCHMARKS "Chat history"). Returns the earlier messages (oldest first)."""
    steps = thread.get("steps") or []
    spoken = [i for i, s in enumerate(steps) if s.get("type") in ("user_message", "assistant_message")]
    if len(spoken) <= limit:
        return []
    first = spoken[-limit]
    by_id = {s["id"]: s for s in steps}
    kept = {s["id"] for s in steps[first:]}
    for s in steps[first:]:  # and the steps they sit in (an answer's "run")
        parent = s.get("parentId")
        while parent and parent not in kept and parent in by_id:
            kept.add(parent)
            parent = by_id[parent].get("parentId")
    earlier = [steps[i] for i in spoken if steps[i]["id"] not in kept]
    note = {"id": str(uuid.uuid4()), "threadId": thread.get("id"), "type": "assistant_message", "name": "Local RAG Chat",
            "output": f"*{len(earlier)} earlier messages of this chat are kept but not shown, so that it opens "
                      f"quickly: the **Earlier** button of the message box shows them.*",
            "createdAt": steps[first].get("createdAt"), "metadata": {}, "streaming": False}
    thread["steps"] = [note] + [s for s in steps if s["id"] in kept]
    thread["elements"] = [e for e in thread.get("elements") or [] if e.get("forId") in kept]
    return earlier


def transcript(messages: list[dict]) -> str:
    """Earlier messages as one Markdown text (one message for the page to draw, not one per message)."""
    parts = []
    for m in messages:
        who = "**You:**" if m.get("type") == "user_message" else "**Local RAG Chat:**"
        parts.append(f"{who} {m.get('output') or ''}".strip())
    return "\n\n---\n\n".join(parts)


async def earlier_messages(count: int) -> str:
    """The first ``count`` messages of the current chat (those a reopened chat did not show)."""
    from chainlit.context import context

    layer = _current_layer()
    thread = await layer.get_thread(context.session.thread_id) if layer is not None and count else None
    spoken = [s for s in (thread or {}).get("steps") or [] if s.get("type") in ("user_message", "assistant_message")]
    return transcript(spoken[:count]) if spoken[:count] else "*Every message of this chat is shown.*"


def create_layer() -> HistoryLayer:
    data = settings().data_dir
    return HistoryLayer(data / DB_NAME, data / "history")


# ------------------------------------------------------------------ access: another user's chat is "not found"
def _current_layer() -> HistoryLayer | None:
    from chainlit.data import get_data_layer

    layer = get_data_layer()
    return layer if isinstance(layer, HistoryLayer) else None


async def only_own_thread(username: str, thread_id: str) -> bool:
    """Chainlit's thread routes ask this before they read, rename, share or delete a chat. Chainlit's own
    answers 401 for another user's chat (telling that it exists); this says 404 for both."""
    layer = _current_layer()
    owner = await layer.thread_owner(thread_id) if layer else None
    if owner is None or owner != username:
        raise HTTPException(status_code=404, detail="Thread not found")
    return True


def answering():
    """Around an answer in the chat: the history's writes wait until it is written."""
    layer = _current_layer()
    return layer.answering() if layer is not None else contextlib.nullcontext()


async def flush() -> None:
    layer = _current_layer()
    if layer is not None:
        await layer.flush()


async def name_chat(name: str, only_placeholder: bool = False) -> None:
    """Give the current chat its name in the chat list (``only_placeholder``: only if it is still named
    after a button, e.g. "Library")."""
    from chainlit.context import context

    layer = _current_layer()
    if layer is None or not context.session.thread_id:
        return
    if only_placeholder:
        rows = await layer.execute_sql('SELECT "name" FROM threads WHERE "id" = :id', {"id": context.session.thread_id})
        if not (isinstance(rows, list) and rows and rows[0]["name"] in set(ACTION_TITLES.values())):
            return
    await layer.update_thread(context.session.thread_id, name=name[:200])


def file_router() -> APIRouter:
    from chainlit.auth import get_current_user

    router = APIRouter()

    @router.get(FILES_ROUTE + "/{user_id}/{element_id}")
    async def element_file(user_id: str, element_id: str, user=Depends(get_current_user)):
        layer = _current_layer()
        found = None
        if layer is not None and user is not None and getattr(user, "id", None) == user_id:
            found = await layer.element_file(user_id, element_id)
        if found is None:
            raise HTTPException(status_code=404, detail="Not found")
        path, mime = found
        return FileResponse(path, media_type=mime)

    return router


def mount(app: FastAPI) -> None:
    """The element file route, in front of Chainlit's catch-all page route; thread access as above."""
    import chainlit.server as cl_server

    from rag.api import prepend

    prepend(app, file_router())
    cl_server.is_thread_author = only_own_thread
