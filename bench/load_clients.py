"""The clients of ``rag bench load`` (bench_load.py): a real Chainlit server (``chainlit run app.py`` on
127.0.0.1, the browser tests' start/stop: tests/e2e/chainlit_server.py) serving the chat over Socket.IO
and ``/v1`` on the same event loop, so both kinds of clients share one engine line (rag.scheduler).

- ``api_one``: one streamed ``/v1/chat/completions`` answer (httpx). A 429 is counted and retried after
  its ``Retry-After`` seconds (honoured, as an OpenAI client's retry does).
- ``ChatClient``: one chat session through python-socketio as the page speaks it (the security tests'
  client, tests/security/sec_client.py ``Chat``, with every event's arrival time recorded); "the server is
  busy ... Retry in N s" is counted and the question asked again after N s in a new session.

Every record carries times in seconds from the burst's start: ``place`` (the first place in line: the
``X-Queue-Position`` header or an SSE comment line on /v1; the "⏳ Nth in line" line in the chat),
``first_text`` (the first text a user reads: the quote; on /v1 it travels with the model's first token
unless the answer waited), ``first`` (the model's first token, after the quote block: when its answer was
served),
``done`` (``[DONE]`` / the chat's task_end), and ``sent`` (the accepted attempt's sending).
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "tests" / "security"), str(REPO_ROOT / "tests" / "e2e")]

import chainlit_server  # noqa: E402  (the browser tests' server start/stop)
import sec_client  # noqa: E402  (the security tests' Socket.IO chat client)

QUESTION = "How do I add documents to the library?"
PLACE = re.compile(r"\*⏳ [^*]*\*")
RETRY = re.compile(r"Retry in (\d+) s")
QUOTE_HEAD = "**From your documents:**"  # the chat's (rag.chat.render)
API_QUOTE_HEAD = "From your documents:"  # /v1's (rag.api.render)
MAX_RETRIES = 200


def model_text(text: str, quote_head: str) -> str:
    """The model's part of an answer's text so far: after the quote block (no blank line inside it)."""
    text = text.strip()
    if not text.startswith(quote_head):
        return text
    return text.split("\n\n", 1)[1].strip() if "\n\n" in text else ""


def record(kind: str, user: str) -> dict:
    return {"kind": kind, "user": user, "sent": None, "status": None, "place": None, "first_text": None,
            "first": None, "done": None, "text": "", "tokens": 0, "error": None, "refused": 0, "retry_waited": 0.0}


class ChatServer:
    """``chainlit run app.py`` over the library in ``data`` (onnx, ``model``, greedy), in its own folder."""

    def __init__(self, root: Path, data: Path, model: str, k: int, max_new_tokens: int, log: Path):
        from bench_api import free_port
        from rag.config import offline_env

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = offline_env(chainlit_server.base_env(
            data, LRC_ENGINE="onnx", LRC_MODEL=model, LRC_TOP_K=str(k), LRC_MAX_NEW_TOKENS=str(max_new_tokens),
            LRC_TEMPERATURE="0", FOUNDRY_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", PYTHONUNBUFFERED="1"))
        for key in ("LRC_API_KEY", "LRC_AUTH", "LRC_MODELS", "LRC_ALLOWED_ORIGINS", "LRC_ALLOWED_HOSTS"):
            env.pop(key, None)
        self.t0 = time.perf_counter()
        self.proc = chainlit_server.spawn(chainlit_server.prepare_workdir(root), self.port, env, log)
        self.ready_seconds = 0.0

    def wait_ready(self, timeout: float = 300.0) -> None:
        try:
            chainlit_server.wait_http(self.url + "/", self.proc, timeout)
        except RuntimeError as exc:
            raise SystemExit(f"{exc}:\n{self.log.read_text(errors='replace')[-3000:]}")
        self.ready_seconds = time.perf_counter() - self.t0

    def stop(self) -> None:
        chainlit_server.stop(self.proc)


async def api_one(client, url: str, model_id: str, user: str, max_new_tokens: int, t0: float | None = None,
                  question: str = QUESTION) -> dict:
    """One streamed answer on ``{url}/v1``; a 429 is retried after its Retry-After (see the module docstring)."""
    body = {"model": model_id, "messages": [{"role": "user", "content": question}], "stream": True, "user": user,
            "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_new_tokens}
    t0 = time.perf_counter() if t0 is None else t0
    rec = record("api", user)
    for _ in range(MAX_RETRIES):
        rec["sent"] = time.perf_counter() - t0
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            rec["status"] = r.status_code
            if r.status_code == 429:
                wait = float(r.headers.get("retry-after") or 1)
                rec["refused"] += 1
                rec["retry_waited"] += wait
                await r.aread()
                await asyncio.sleep(wait)
                continue
            if r.status_code != 200:
                rec["error"] = (await r.aread()).decode(errors="replace")[:300]
                return rec
            if r.headers.get("x-queue-position"):
                rec["place"] = time.perf_counter() - t0
            async for line in r.aiter_lines():
                now = time.perf_counter() - t0
                if line.startswith(":") and "in line" in line and rec["place"] is None:
                    rec["place"] = now
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data.strip() == "[DONE]":
                    rec["done"] = now
                    continue
                obj = json.loads(data)
                rec["error"] = obj.get("error") or rec["error"]
                if obj.get("usage"):
                    rec["tokens"] = obj["usage"].get("completion_tokens", 0)
                for choice in obj.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        rec["first_text"] = now if rec["first_text"] is None else rec["first_text"]
                        rec["text"] += text
                        if rec["first"] is None and model_text(rec["text"], API_QUOTE_HEAD):
                            rec["first"] = now
            return rec
    rec["error"] = f"refused {MAX_RETRIES} times"
    return rec


class _TimedEvents(list):
    """Socket.IO events as they arrive, each with its arrival time (``times``, perf_counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item) -> None:
        self.times.append(time.perf_counter())
        super().append(item)


class _TimedChat(sec_client.Chat):
    """sec_client's chat session with timed events and room for a long wait in line."""

    def __init__(self, target) -> None:
        super().__init__(target, sec_client.cookie(target))
        self.events = _TimedEvents()

    async def wait_for(self, event: str, after: int = 0, timeout: float = 3600.0) -> int:
        return await super().wait_for(event, after, timeout)


class ChatClient:
    """One chat user (a session of its own; a session is the user without logins)."""

    def __init__(self, target) -> None:
        self.target = target
        self.chat: _TimedChat | None = None

    async def open(self) -> None:
        """Connected and welcomed (before the burst: a user has the page open when they ask)."""
        self.chat = _TimedChat(self.target)
        await self.chat.start()
        deadline = time.monotonic() + 600  # start's task_end may come before the welcome's: wait for that one
        while time.monotonic() < deadline:
            welcome = next((i for i, (name, data) in enumerate(self.chat.events) if isinstance(data, dict)
                            and "Welcome to Local RAG Chat" in str(data.get("output") or "")), None)
            if welcome is not None and any(name == "task_end" for name, _ in self.chat.events[welcome:]):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the chat's welcome did not come within 600 s")

    async def close(self) -> None:
        if self.chat is not None:
            await self.chat.close()

    async def ask(self, t0: float, question: str = QUESTION) -> dict:
        rec = {**record("chat", ""), "question": question}
        for _ in range(MAX_RETRIES):
            if self.chat is None:
                await self.open()
            rec["user"] = f"chat:{self.chat.session_id}"
            seen = len(self.chat.events)
            rec["sent"] = time.perf_counter() - t0
            await self.chat.ask(question)
            self._fold(rec, seen, t0)
            busy = "server is busy" in rec["text"]
            if not busy:
                rec["status"] = 200
                return rec
            rec["refused"] += 1
            wait = float(m.group(1)) if (m := RETRY.search(rec["text"])) else 1.0
            rec["retry_waited"] += wait
            await self.close()
            self.chat = None  # the user asks again (in a new chat: the busy answer stays out of its history)
            await asyncio.sleep(wait)
            for key in ("place", "first_text", "first", "done"):
                rec[key] = None
        rec["error"] = f"busy {MAX_RETRIES} times"
        return rec

    def _fold(self, rec: dict, seen: int, t0: float) -> None:
        """The answer message's content as it changed (stream_start, stream_token, new/update_message)."""
        events, times = self.chat.events, self.chat.events.times
        content: dict[str, str] = {}
        answer_id = None
        for (name, data), at in zip(events[seen:], times[seen:]):
            now = at - t0
            if name == "task_end":
                rec["done"] = now
                break
            if not isinstance(data, dict):
                continue
            if name in ("stream_start", "new_message", "update_message") and data.get("type") == "assistant_message":
                answer_id = data.get("id")
                content[answer_id] = str(data.get("output") or "")
            elif name == "stream_token" and data.get("id") in content:
                answer_id = data["id"]
                token = str(data.get("token") or "")
                content[answer_id] = token if data.get("isSequence") else content[answer_id] + token
            else:
                continue
            text = content[answer_id]
            if rec["place"] is None and PLACE.search(text):
                rec["place"] = now
            shown = PLACE.sub("", text).strip()
            if shown and rec["first_text"] is None:
                rec["first_text"] = now
            if model_text(shown, QUOTE_HEAD) and rec["first"] is None:
                rec["first"] = now
            rec["text"] = text
