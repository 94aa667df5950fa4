"""Chainlit 2.12 (the newest release) trusts what the browser sends in ways this app cannot: it is guarded
here, once, at start-up (app.py calls ``install``). docs/SECURITY.md lists each item and its test.

- **A session id is never a path.** Chainlit names the session's upload folder ``.files/<session id>``
  after the id the client sends on connect, and deletes that folder when the session ends. Here the
  Socket.IO connect handler refuses any id (and chat id) that is not a UUID, and a session's folder is
  only ever a direct child of Chainlit's files folder (its deletion checks that again).
- **Thread sharing follows ``allow_thread_sharing``**: off (the default in .chainlit/config.toml), the
  share routes answer 404 ("not found", as for another user's chat).
- **Feedback only on one's own messages**: PUT/DELETE /feedback check whose chat the message is in.
- ``/set-session-cookie`` only takes a UUID.
- The HTTP guard (rag.web.guard: Host, Origin, JSON, headers) is put in front of everything, with the
  hashes of the inline scripts of Chainlit's page in its Content-Security-Policy.
"""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request

from rag.web import guard

log = logging.getLogger("local-rag-chat.hardening")


def install(app, bind_host: str, page_html: str) -> guard.Policy:
    """Everything above, on Chainlit's app; ``page_html``: the page as app.py serves it (for its script
    hashes). Returns the guard's policy."""
    from rag.api import prepend

    policy = guard.install(app, bind_host)
    policy.script_hashes = guard.inline_script_hashes(page_html)
    _guard_socket_connect()
    _guard_session_folders()
    prepend(app, _routes())
    return policy


# ------------------------------------------------------------------ session ids
def _guard_socket_connect() -> None:
    from chainlit.server import sio

    handlers = sio.handlers.setdefault("/", {})
    original = handlers.get("connect")
    if original is None or getattr(original, "_lrc_guarded", False):
        return

    async def connect(sid, environ, auth=None):
        auth = auth if isinstance(auth, dict) else {}
        session_id, thread_id = auth.get("sessionId"), auth.get("threadId")
        if not guard.is_uuid(str(session_id)) or (thread_id and not guard.is_uuid(str(thread_id))):
            log.warning("socket connect refused: a session id (%.60r) or chat id (%.60r) that is not a UUID",
                        session_id, thread_id)
            raise ConnectionRefusedError("invalid session id")
        return await original(sid, environ, auth)

    connect._lrc_guarded = True
    handlers["connect"] = connect


def _guard_session_folders() -> None:
    """BaseSession.files_dir is Chainlit's files folder / the session id, which uploads are written under and
    clean-up deletes: for an id that is not a UUID (refused on connect already) it raises instead."""
    from chainlit import session as cl_session
    from chainlit.config import FILES_DIRECTORY

    base = cl_session.BaseSession
    if getattr(base, "_lrc_guarded", False):
        return
    original = base.files_dir

    def files_dir(self) -> Path:
        folder = original.fget(self)
        if not guard.is_uuid(str(self.id)) or folder.parent.resolve() != Path(FILES_DIRECTORY).resolve():
            raise PermissionError(f"not a session folder: {folder}")
        return folder

    base.files_dir = property(files_dir)  # persist_file and delete both go through it
    base._lrc_guarded = True


# ------------------------------------------------------------------ routes in front of Chainlit's
def _routes() -> APIRouter:
    from chainlit.auth import get_current_user
    from chainlit.config import config

    router = APIRouter()

    def sharing_off() -> None:
        if not getattr(config.features, "allow_thread_sharing", False):
            raise HTTPException(status_code=404, detail="Thread not found")

    @router.put("/project/thread/share", dependencies=[Depends(sharing_off)])
    async def share_thread(request: Request, user=Depends(get_current_user)):
        from chainlit.server import share_thread as chainlit_share
        from chainlit.types import ShareThreadRequest

        return await chainlit_share(request, ShareThreadRequest(**await request.json()), user)

    @router.get("/project/share/{thread_id}", dependencies=[Depends(sharing_off)])
    async def shared_thread(request: Request, thread_id: str, user=Depends(get_current_user)):
        from chainlit.server import get_shared_thread

        return await get_shared_thread(request, thread_id, user)

    @router.put("/feedback")
    async def put_feedback(request: Request, user=Depends(get_current_user)):
        from chainlit.server import update_feedback
        from chainlit.types import UpdateFeedbackRequest

        update = UpdateFeedbackRequest(**await request.json())
        await _own_message(user, step_id=update.feedback.forId)
        if update.feedback.id:
            await _own_message(user, feedback_id=update.feedback.id, missing_ok=True)
        return await update_feedback(request, update, user)

    @router.delete("/feedback")
    async def delete_feedback(request: Request, user=Depends(get_current_user)):
        from chainlit.server import delete_feedback as chainlit_delete
        from chainlit.types import DeleteFeedbackRequest

        payload = DeleteFeedbackRequest(**await request.json())
        await _own_message(user, feedback_id=payload.feedbackId)
        return await chainlit_delete(request, payload, user)

    @router.post("/set-session-cookie")
    async def set_session_cookie(request: Request):
        from fastapi import Response

        from chainlit.server import set_session_cookie as chainlit_cookie

        body = await request.json()
        if not isinstance(body, dict) or not guard.is_uuid(str(body.get("session_id", ""))):
            raise HTTPException(status_code=400, detail="Not a session id.")
        response = Response()
        result = await chainlit_cookie(_Replay(request, body), response)
        from fastapi.responses import JSONResponse

        out = JSONResponse(result)
        for key, value in response.headers.items():
            if key.lower() == "set-cookie":
                out.headers.append(key, value)
        return out

    return router


class _Replay:
    """A request whose JSON body was read already (Chainlit's handler reads it again)."""

    def __init__(self, request: Request, body: dict):
        self._request, self._body = request, body
        self.client = request.client

    async def json(self):
        return self._body


async def _own_message(user, step_id: str | None = None, feedback_id: str | None = None,
                       missing_ok: bool = False) -> None:
    """404 unless the message (or the feedback's message) is in one of ``user``'s chats."""
    from rag.chat.history import _current_layer

    if user is None:
        raise HTTPException(status_code=401, detail="Unauthorized")
    layer = _current_layer()
    if layer is None:
        raise HTTPException(status_code=400, detail="Data persistence is not enabled")
    owner = await layer.feedback_owner(step_id=step_id, feedback_id=feedback_id)
    if owner is None and missing_ok:
        return
    if owner != user.identifier:
        raise HTTPException(status_code=404, detail="Message not found")
