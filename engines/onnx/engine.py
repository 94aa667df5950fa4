"""The in-process engine: ONNX Runtime GenAI models from local folders (see ``engines.onnx.models``).

Generation runs in ONE worker process per engine (``engines.onnx.worker``), because
onnxruntime-genai holds the GIL while it computes and would freeze the app's event loop. The model
is loaded once in the worker and shared by every chat; concurrent answers are interleaved token by
token. The app side never imports onnxruntime-genai: it sends small pickled messages over a socket
pair and reads the replies with ``loop.add_reader`` (sends go through one background thread), so the
event loop never waits on the worker. A worker that dies fails the answer it was giving with a
readable error and is restarted by the next request.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterable

from engines.base import (EngineError, EngineUnavailable, Generation, GenerationFailed, GenerationOptions,
                          Message, ModelInfo, ModelNotFound, PromptTooLong)
from engines.onnx import worker as worker_module
from engines.onnx.models import ModelCatalog, read_context_length

# the folder that holds the ``engines`` package: the worker imports it from there
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_READY_TIMEOUT = 60.0


class _Worker:
    """One child process and its connection. Replies are routed to per-request queues."""

    def __init__(self, proc: subprocess.Popen, conn: Connection):
        self.proc = proc
        self.conn = conn
        self.dead = False
        self.exit_reason = ""
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-worker-send")

    def send(self, msg: tuple) -> None:
        """Queue a message for the worker; never blocks the caller (a full pipe blocks the sender thread)."""
        if self.dead:
            return
        try:
            self.sender.submit(self._send, msg)
        except RuntimeError:  # executor already shut down
            pass

    def _send(self, msg: tuple) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(msg)

    def describe_exit(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "the worker stopped answering"
        if code < 0:
            return f"the worker process was killed by signal {-code}"
        return f"the worker process exited with code {code}"


class OnnxGenaiEngine:
    name = "onnx"
    label = "In-process (ONNX Runtime GenAI)"
    needs_service = False  # the model runs in a worker process this engine starts itself
    start_hint = ""

    def __init__(self, models_dir: str | os.PathLike | None = None, extra_dirs: Iterable[str | os.PathLike] = (),
                 default_model: str | None = None, max_active: int = 4, prompt_chunk: int = 128, nice: int = 0,
                 threads: int = 0):
        """``models_dir``: provisioned model folders; ``extra_dirs``: bring-your-own model folders (see
        ``engines.onnx.models``). ``default_model``: model id/alias/path used when a request names none
        (else the best provisioned one). ``max_active``: answers generated at once (more wait in line).
        ``prompt_chunk``: prompt tokens fed per step (smaller = quicker cancel and fairer interleaving,
        larger = a bit faster). ``threads``: threads that run the model (0: ONNX Runtime GenAI's own choice)."""
        self.catalog = ModelCatalog(models_dir, extra_dirs, default_model)
        self.max_active = max_active
        self.prompt_chunk = prompt_chunk
        self.nice = nice  # the worker process's niceness (Unix)
        self.threads = threads
        self._worker: _Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._queues: dict[int, asyncio.Queue] = {}
        self._ids = itertools.count(1)
        self._ready: asyncio.Future | None = None

    # ------------------------------------------------------------ models
    async def list_models(self) -> list[ModelInfo]:
        return self.catalog.list_local_models()

    def _resolve(self, model: str | None) -> Path:
        return self.catalog.resolve(model or None)

    async def resolve_model(self, model: str | None = None) -> str:
        """A model's id is its folder name."""
        return self._resolve(model).name

    async def context_length(self, model: str | None = None) -> int:
        path = self._resolve(model)
        ctx = read_context_length(path)
        if not ctx:
            raise EngineUnavailable(f"{path}/genai_config.json does not state the model's context length.")
        return ctx

    async def count_tokens(self, messages: list[Message], model: str | None = None) -> int:
        _check_messages(messages)
        return int(await self._ask("count", str(self._resolve(model)), messages))

    async def encode(self, messages: list[Message], model: str | None = None) -> list[int]:
        """The prompt's token ids exactly as this engine feeds them to the model (chat template applied;
        the in-browser page generates from these, rag.browser)."""
        _check_messages(messages)
        return await self._ask("encode", str(self._resolve(model)), messages)  # the worker's ints

    async def worker_status(self) -> dict:
        """What the worker is doing: {"active": answers generating, "waiting": queued, "models": loaded}."""
        return await self._ask("status")

    async def _ask(self, kind: str, *args):
        """One request with one reply of the same kind: its payload, or the error the worker sent."""
        rid, queue = await self._open()
        try:
            self._worker.send((kind, rid, *args))
            msg = await queue.get()
        finally:
            self._queues.pop(rid, None)
        if msg[0] == kind:
            return msg[2]
        raise _error_from(msg)

    # ------------------------------------------------------------ answers
    def stream(self, messages: list[Message], options: GenerationOptions | None = None,
               model: str | None = None) -> "OnnxGeneration":
        return OnnxGeneration(self, messages, options or GenerationOptions(), model)

    # ------------------------------------------------------------ worker management
    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        old, self._loop = self._loop, loop
        self._lock = asyncio.Lock()
        # answers started on a previous loop cannot be resumed on this one
        for rid in list(self._queues):
            if self._worker:
                self._worker.send(("cancel", rid))
        self._queues.clear()
        if self._worker and not self._worker.dead:
            if old is not None:
                with contextlib.suppress(Exception):
                    old.remove_reader(self._worker.conn.fileno())
            loop.add_reader(self._worker.conn.fileno(), self._on_readable)

    async def _open(self) -> tuple[int, asyncio.Queue]:
        """A fresh request id and its reply queue, with a live worker behind them."""
        await self._ensure_worker()
        rid = next(self._ids)
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[rid] = queue
        return rid, queue

    async def _ensure_worker(self) -> None:
        self._bind_loop()
        async with self._lock:
            if self._worker and not self._worker.dead and self._worker.proc.poll() is None:
                return
            if self._worker:
                self._discard_worker()
            loop = asyncio.get_running_loop()
            worker = await loop.run_in_executor(None, self._spawn)
            ready: asyncio.Future = loop.create_future()
            self._worker = worker
            self._ready = ready
            loop.add_reader(worker.conn.fileno(), self._on_readable)
            try:
                await asyncio.wait_for(asyncio.shield(ready), _READY_TIMEOUT)
            except (asyncio.TimeoutError, EngineError) as exc:
                reason = worker.describe_exit()
                self._discard_worker()
                raise EngineUnavailable(f"The generation worker did not start ({reason}).",
                                        "Check that onnxruntime-genai is installed in this environment "
                                        "(`make setup`).") from exc

    def _spawn(self) -> _Worker:
        """``python -m engines.onnx.worker`` with this interpreter, importing ``engines`` from where this
        process did; it keeps this process's working folder, so relative model paths mean the same."""
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")] if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", worker_module.__name__, "--fd", str(child_sock.fileno()),
                 "--max-active", str(self.max_active), "--prompt-chunk", str(self.prompt_chunk),
                 "--nice", str(self.nice), "--threads", str(self.threads)],
                pass_fds=[child_sock.fileno()], env=env, stdin=subprocess.DEVNULL)
        finally:
            child_sock.close()
        conn = Connection(parent_sock.detach())
        return _Worker(proc, conn)

    def _on_readable(self) -> None:
        """Called by the event loop when the worker has written something: route every message."""
        worker = self._worker
        if worker is None or worker.dead:
            return
        try:
            while worker.conn.poll():
                self._route(worker.conn.recv())
        except (EOFError, OSError):
            self._worker_died(worker)

    def _route(self, msg: tuple) -> None:
        if msg[0] == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg[1])
            return
        queue = self._queues.get(msg[1])
        if queue is not None:
            queue.put_nowait(msg)

    def _worker_died(self, worker: _Worker) -> None:
        """The worker's connection closed: detach it now, tell the answers it was giving once its exit is known."""
        rids = list(self._queues)
        self._detach(worker)
        self._loop.create_task(self._report_death(worker, rids))

    async def _report_death(self, worker: _Worker, rids: list[int]) -> None:
        for _ in range(100):  # the exit status follows the closed socket within a few ms
            if worker.proc.poll() is not None:
                break
            await asyncio.sleep(0.01)
        reason = worker.describe_exit()
        _reap(worker)
        text = f"The generation worker stopped unexpectedly ({reason})."
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(GenerationFailed(text))
        for rid in rids:
            queue = self._queues.get(rid)
            if queue is not None:
                queue.put_nowait(("error", rid, "WorkerDied", text, {}))

    def _detach(self, worker: _Worker) -> None:
        if self._worker is worker:
            self._worker = None
        worker.dead = True
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(worker.conn.fileno())
        worker.sender.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            worker.conn.close()

    def _discard_worker(self) -> None:
        worker = self._worker
        if worker is not None:
            self._detach(worker)
            _reap(worker)

    def _send_cancel(self, rid: int) -> None:
        if self._worker is not None:
            self._worker.send(("cancel", rid))

    async def aclose(self) -> None:
        """Stop the worker (politely, then by force after 5 s); answers still running end with an error. A worker
        being started (the chat's warm-up, a first answer) is waited for, then stopped too: a server told to stop
        right after it opened leaves no worker behind."""
        lock = self._lock
        if lock is not None and lock.locked() and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lock.acquire(), _READY_TIMEOUT)
                lock.release()
        worker = self._worker
        if worker is None:
            return
        self._worker = None
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(worker.conn.fileno())
        worker.send(("shutdown",))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(loop.run_in_executor(None, worker.proc.wait)), 5)
        self._detach(worker)
        _reap(worker)
        for rid, queue in self._queues.items():
            queue.put_nowait(("error", rid, "Closed", "The engine was closed.", {}))
        self._queues.clear()

    @property
    def worker_pid(self) -> int | None:
        """Process id of the generation worker (None before the first request)."""
        return self._worker.proc.pid if self._worker and not self._worker.dead else None


class OnnxGeneration(Generation):
    """One running answer, generated by the engine's worker process."""

    def __init__(self, engine: OnnxGenaiEngine, messages: list[Message], options: GenerationOptions,
                 model: str | None):
        super().__init__(messages, options, model)
        self.engine = engine
        self._rid: int | None = None
        self._queue: asyncio.Queue | None = None

    async def _pieces(self):
        _check_messages(self.messages)
        opts = _check_options(self.options)
        path = self.engine._resolve(self.model)
        if self.cancelled:
            return
        self._rid, self._queue = await self.engine._open()
        received = 0  # pieces (one a token, but for held-back stop-string text)
        try:
            self.engine._worker.send(("start", self._rid, str(path), self.messages, opts))
            while not self.cancelled:
                msg = await self._queue.get()
                kind = msg[0]
                if kind == "piece":
                    received += 1
                    yield msg[2]
                elif kind == "started":
                    self.usage.prompt_tokens = int(msg[2])
                elif kind == "done":
                    self.usage.completion_tokens = int(msg[3])
                    self.usage.finish_reason = msg[2]
                    return
                elif kind == "error":
                    raise _error_from(msg)
                # "cancel-local": the loop condition sees the cancel
        finally:
            self.engine._queues.pop(self._rid, None)
            if self.usage.finish_reason is None:  # stopped before the worker's "done" (and its count)
                self.usage.completion_tokens = max(self.usage.completion_tokens, received)

    def _stop(self) -> None:
        """The worker drops this answer at its next step; a waiting read wakes up at once."""
        if self._rid is not None:
            self.engine._send_cancel(self._rid)
            if self._queue is not None:
                self._queue.put_nowait(("cancel-local", self._rid))


def _reap(worker: _Worker) -> None:
    """Stop the process if it still runs and collect its exit status without blocking the caller."""
    if worker.proc.poll() is None:
        with contextlib.suppress(OSError):
            worker.proc.kill()
        threading.Thread(target=worker.proc.wait, daemon=True, name="onnx-worker-reap").start()


def _check_messages(messages: list[Message]) -> None:
    if not isinstance(messages, list) or not messages:
        raise GenerationFailed("No messages to answer.", "Pass a non-empty list of {role, content} messages.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                m.get("role") not in ("system", "user", "assistant"):
            raise GenerationFailed(f"Message {i} is not a valid chat message: {str(m)[:80]!r}.",
                                   "Each message needs role system/user/assistant and a text content.")


def _check_options(o: GenerationOptions) -> dict:
    if not isinstance(o.max_new_tokens, int) or o.max_new_tokens < 1:
        raise GenerationFailed(f"max_new_tokens must be a whole number of at least 1, not {o.max_new_tokens!r}.")
    if o.temperature < 0 or not 0 < o.top_p <= 1:
        raise GenerationFailed(f"temperature must be >= 0 and top_p in (0, 1]; got {o.temperature}, {o.top_p}.")
    if not 0 < o.repetition_penalty <= 10:
        raise GenerationFailed(f"repetition_penalty must be in (0, 10]; got {o.repetition_penalty}.")
    return {"max_new_tokens": o.max_new_tokens, "temperature": float(o.temperature), "top_p": float(o.top_p),
            "stop": [s for s in (o.stop or []) if isinstance(s, str) and s], "seed": o.seed,
            "repetition_penalty": float(o.repetition_penalty)}


def _error_from(msg: tuple) -> EngineError:
    _, _, kind, text, extra = msg
    if kind == "PromptTooLong":
        return PromptTooLong(text, "Use fewer or shorter passages, a shorter history, or a smaller answer budget.",
                             prompt_tokens=extra.get("prompt_tokens"), context_length=extra.get("context_length"))
    if kind == "ModelLoad":
        return ModelNotFound(text, "Rebuild it with `python -m rag models pull NAME --force` or check the folder.")
    if kind == "WorkerDied":
        return GenerationFailed(text, "Try again: the worker is restarted on the next request.")
    if kind == "Closed":
        return EngineUnavailable(text)
    return GenerationFailed(text)
