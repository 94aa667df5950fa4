"""Speaking to a real server as its page does, or as an attacker would: header or password login, the
Socket.IO connect with any session id, a chat message, an upload. Plain httpx and python-socketio."""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import httpx

from conftest import PASSWORDS  # imported while tests/security is collected (its conftest is "conftest" then)


def token(target, name: str | None = None, password: str | None = None, origin: str | None = None) -> httpx.Response:
    """The login the page makes: POST /auth/header (no login mode) or /login (password mode); the answer
    sets the `access_token` cookie. ``origin``: the Origin header sent (default: the server's own)."""
    headers = {"Origin": origin or target.url}
    if name is None:
        return httpx.post(target.url + "/auth/header", headers=headers, timeout=30)
    return httpx.post(target.url + "/login", data={"username": name, "password": password or PASSWORDS[name]},
                      headers=headers, timeout=30)


def cookie(target, name: str | None = None) -> str:
    answer = token(target, name)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return answer.cookies["access_token"]


class Chat:
    """One Socket.IO session (python-socketio); ``events`` collects (name, data) as they arrive."""

    def __init__(self, target, access_token: str | None, session_id: str | None = None,
                 origin: str | None = None, thread_id: str | None = None):
        self.target, self.token = target, access_token
        self.session_id = session_id or str(uuid.uuid4())
        self.origin, self.thread_id = origin or target.url, thread_id
        self.events: list[tuple[str, object]] = []
        self.client = None

    async def connect(self) -> None:
        """Raises socketio.exceptions.ConnectionError when the server refuses."""
        import socketio

        self.client = socketio.AsyncClient(reconnection=False)
        self.client.on("*", lambda event, data=None: self.events.append((event, data)))
        headers = {"Origin": self.origin}
        if self.token:
            headers["Cookie"] = f"access_token={self.token}"
        await self.client.connect(self.target.url, socketio_path="/ws/socket.io", transports=["websocket"],
                                  headers=headers, wait_timeout=20,
                                  auth={"sessionId": self.session_id, "clientType": "webapp", "userEnv": "{}",
                                        "chatProfile": None, "threadId": self.thread_id})

    async def wait_for(self, event: str, after: int = 0, timeout: float = 240.0) -> int:
        """Until ``event`` arrives (after the first ``after`` events); returns how many events there are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(name == event for name, _ in self.events[after:]):
                return len(self.events)
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no {event} within {timeout:.0f}s; got {[n for n, _ in self.events][-20:]}")

    async def start(self) -> None:
        """The chat's start (the welcome), as the page asks for it once connected."""
        await self.connect()
        seen = len(self.events)
        await self.client.emit("connection_successful")
        await self.wait_for("task_end", seen)

    async def ask(self, text: str, files: list[dict] | None = None) -> None:
        seen = len(self.events)
        now = datetime.now(timezone.utc).isoformat()
        message = {"id": str(uuid.uuid4()), "threadId": self.thread_id or "", "name": "User", "type": "user_message",
                   "output": text, "createdAt": now}
        await self.client.emit("client_message", {"message": message, "fileReferences": files or []})
        await self.wait_for("task_end", seen)

    async def clear(self) -> None:
        await self.client.emit("clear_session")
        await asyncio.sleep(0.5)  # the server handles events concurrently: the flag first, then the disconnect
        await self.client.disconnect()

    async def close(self) -> None:
        if self.client is not None and self.client.connected:
            await self.client.disconnect()

    def upload(self, name: str, data: bytes, mime: str) -> httpx.Response:
        return upload(self.target, self.session_id, name, data, mime, self.token)

    def texts(self) -> str:
        return "\n".join(str(d.get("output", "")) for e, d in self.events
                         if e in ("new_message", "update_message") and isinstance(d, dict))


def upload(target, session_id: str, name: str, data: bytes, mime: str, access_token: str | None,
           origin: str | None = None) -> httpx.Response:
    """POST /project/file as the page does (multipart, the session id in the query)."""
    cookies = {"access_token": access_token} if access_token else {}
    return httpx.post(target.url + "/project/file", params={"session_id": session_id},
                      files={"file": (name, data, mime)}, cookies=cookies,
                      headers={"Origin": origin or target.url}, timeout=60)
