"""Foundry Local (or any OpenAI-compatible endpoint) through the official ``openai`` client: list
models, stream chat completions.

Its settings come as constructor arguments (the app passes FOUNDRY_* through ``engine_config``).
The endpoint is the ``base_url`` given, else one discovered (``engines.foundry.discovery``: the
launcher's ``state_file``, then ``foundry service status``). A discovered endpoint is looked up
again after a connection failure (a restarted service may listen elsewhere); a configured one is not.

The model is the one asked for, else the configured ``model`` (an alias such as ``phi-4-mini`` or a
full id such as ``Phi-4-mini-instruct-generic-cpu:5``), else the launcher's model, else the first one
the service lists. Aliases are resolved to the id the service lists, since the service accepts ids only.

Usage comes from the service (``stream_options.include_usage``; dropped if a service refuses it,
then completion tokens are counted from the pieces). The context length comes from the model
listing if it has one, else the launcher's state file, else a PromptTooLong answer that named it,
else ``default_context_length``. Token counts are estimates: the API has no tokenizer endpoint.

Every failure is raised as an ``engines.base`` error whose text says what to do. Only connecting
is retried (plus one resend when a connection closes before any response byte); a half-streamed
answer never is, nor a 5xx answer or a timeout, so the client's own retries are off. The deadlines
(first token, then between tokens) are kept here, around each await, so that they and ``cancel()``
act at once; ``cancel()`` cancels the pending read and closes the stream, which also stops the work
on the service.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx2  # the openai client's transport: tells a connection that never opened from a dropped one
import openai

from engines.base import (EngineError, EngineTimeout, EngineUnavailable, Generation, GenerationFailed,
                          GenerationOptions, Message, ModelInfo, ModelNotFound, PromptTooLong, StreamBroken,
                          Usage, estimate_tokens)
from engines.foundry.discovery import START_HINT, discover, resolve_alias
from engines.foundry.errors import classify, error_text, names_unknown_model

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF = 0.2  # seconds, doubled after each failed attempt
MODELS_TTL = 10.0  # seconds a model listing is reused for alias resolution
DEFAULT_CONTEXT_LENGTH = 4096
NO_KEY = "none"  # the client insists on a key (else it would read OPENAI_API_KEY); a local service ignores it
_CONTEXT_KEYS = ("context_length", "max_model_len", "context_window", "max_context_length", "maxInputTokens",
                 "max_input_tokens")


class FoundryGeneration(Generation):
    """One streamed answer. ``cancel()`` cancels the pending read; the stream is then closed."""

    def __init__(self, engine: "FoundryEngine", messages: list[Message], options: GenerationOptions,
                 model: str | None):
        super().__init__(messages, options, model)
        self.engine = engine
        self._read_task: asyncio.Future | None = None

    def _stop(self) -> None:
        task = self._read_task
        if task is not None and not task.done():
            task.cancel()

    async def _pending(self, awaitable, timeout: float, waiting_for: str):
        """Await as a task that cancel() can stop; None if cancelled, EngineTimeout if late."""
        self._read_task = asyncio.ensure_future(awaitable)
        if self.cancelled:
            self._read_task.cancel()
        try:
            done, _ = await asyncio.wait({self._read_task}, timeout=timeout)
        except asyncio.CancelledError:
            self._read_task.cancel()
            raise
        if not done:
            self._read_task.cancel()
            raise EngineTimeout(
                f"Foundry Local sent no {waiting_for} within {timeout:g} s.",
                "The model may be overloaded or the prompt too long for this machine; try again, "
                "use a shorter question, or raise FOUNDRY_FIRST_BYTE_TIMEOUT.")
        task, self._read_task = self._read_task, None
        if task.cancelled():
            return None  # cancel() was called
        return task.result()

    async def _next_chunk(self, stream: openai.AsyncStream, timeout: float, waiting_for: str):
        """The next chunk of the stream; None at its end or after cancel(). An error event inside the
        stream comes out as ``openai.APIError`` (the caller knows what it answers)."""
        try:
            return await self._pending(anext(stream), timeout, waiting_for)
        except StopAsyncIteration:
            return None
        except ValueError as exc:  # an event whose data is not JSON
            raise StreamBroken(f"Foundry Local sent a garbled stream chunk: {getattr(exc, 'doc', '')[:120]!r}.",
                               "The answer is incomplete; ask again or restart the service.") from exc
        except openai.APITimeoutError as exc:
            raise EngineTimeout(f"Foundry Local stopped sending ({_cause(exc)}).",
                                "Try again; if it persists, restart the service.") from exc
        except openai.APIConnectionError as exc:
            raise StreamBroken(
                "Foundry Local stopped in the middle of the answer (the connection closed).",
                "The answer above is incomplete. If the service has stopped, start it again "
                "(`make foundry`, or `foundry service start` with the desktop app), then ask again."
            ) from exc

    async def _pieces(self):
        engine, usage = self.engine, self.usage
        pieces = 0
        stream: openai.AsyncStream | None = None
        try:
            model_id = await engine.resolve_model(self.model)
            deadline = time.monotonic() + engine.first_byte_timeout
            # the first-byte budget covers sending, the response headers and the first token
            stream = await self._pending(engine._open_stream(model_id, self.messages, self.options),
                                         engine.first_byte_timeout, "answer")
            if stream is None:  # cancelled before the service answered
                return
            content_type = stream.response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                raise StreamBroken(f"Foundry Local did not answer with an event stream ({content_type or 'no type'}).",
                                   "The answer is incomplete; ask again or restart the service.")
            usage.prompt_tokens = await engine.count_tokens(self.messages)
            timeout = max(deadline - time.monotonic(), 0.01)
            waiting_for = "first token"
            while not self.cancelled:
                try:
                    chunk = await self._next_chunk(stream, timeout, waiting_for)
                except openai.APIError as exc:  # e.g. a prompt too long is reported inside a 200 stream
                    raise await engine._classify(400 if not pieces else 500, error_text(exc.body), model_id,
                                                 str(exc.request.url)) from exc
                if chunk is None:
                    break
                for text in _read_chunk(chunk, usage):
                    pieces += 1
                    timeout, waiting_for = engine.read_timeout, "further tokens"
                    yield text
            if not self.cancelled and usage.finish_reason is None:
                raise StreamBroken("Foundry Local's answer stopped before its end (the stream was cut off).",
                                   "The answer above is incomplete. Check the service and ask again.")
        finally:
            self._stop()  # a read left pending by a timeout
            if stream is not None:
                try:
                    await stream.close()
                except Exception:  # noqa: BLE001 - closing a broken stream
                    pass
            if usage.completion_tokens == 0:
                usage.completion_tokens = pieces  # one SSE delta is about one token


def _cause(exc: BaseException) -> str:
    """The transport's name for what went wrong (``ConnectError``, ``ReadTimeout``...)."""
    return type(exc.__cause__ or exc).__name__


def _read_chunk(chunk: Any, usage: Usage) -> list[str]:
    """The text pieces of one chat.completion.chunk; its usage and finish reason go into ``usage``."""
    if not isinstance(chunk, openai.BaseModel):  # the event's JSON was not an object
        raise StreamBroken(f"Foundry Local sent an unexpected stream chunk: {str(chunk)[:120]!r}.",
                           "The answer is incomplete; ask again.")
    if (u := getattr(chunk, "usage", None)) is not None:
        usage.prompt_tokens = int(getattr(u, "prompt_tokens", 0) or usage.prompt_tokens)
        usage.completion_tokens = int(getattr(u, "completion_tokens", 0) or 0)
    texts = []
    for choice in getattr(chunk, "choices", None) or []:
        if reason := getattr(choice, "finish_reason", None):
            usage.finish_reason = str(reason)
        text = getattr(getattr(choice, "delta", None), "content", None)
        if text is None:
            text = getattr(choice, "text", None)  # legacy completions shape
        if text and isinstance(text, str):
            texts.append(text)
    return texts


class FoundryEngine:
    name = "foundry"
    label = "Foundry Local"
    needs_service = True  # answers come from a service that runs on its own, and may not be running
    start_hint = ("Start it with `make foundry` (or `foundry service start`), or set FOUNDRY_BASE_URL to its "
                  "address, then choose it again.")

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 connect_timeout: float = 2.0, first_byte_timeout: float = 120.0,
                 read_timeout: float | None = None, default_context_length: int | None = None,
                 state_file: str | Path | None = None, discover_cli: bool = True):
        """``base_url``: the endpoint (else discovered: ``state_file``, the launcher's, then the
        ``foundry`` command unless ``discover_cli`` is False). ``model``: alias or id used when a
        request names none. ``first_byte_timeout``: seconds for the request up to its first token;
        ``read_timeout``: between later tokens (default: the larger of that and 60 s).
        ``default_context_length``: for a model the service does not describe."""
        self._configured_url = (base_url or "").rstrip("/") or None
        self._configured_model = model or None
        self.api_key = api_key or None
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout if read_timeout is not None else max(self.first_byte_timeout, 60.0)
        self.default_context_length = default_context_length or DEFAULT_CONTEXT_LENGTH
        self.state_file = Path(state_file).expanduser() if state_file else None
        self.discover_cli = discover_cli
        self._base_url: str | None = None  # found on first use (see _discover)
        self._state_model: str | None = None
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI]] = {}
        self._models: list[ModelInfo] = []
        self._models_at = 0.0
        self._resolved: dict[str, str] = {}
        self._learned_context: dict[str, int] = {}  # from the launcher's state or an error message
        self._usage_supported = True  # stream_options.include_usage; dropped if the service refuses it

    # ---------------------------------------------------------------- endpoint
    @property
    def base_url(self) -> str | None:
        """The endpoint in use (None until a discovered one has been found)."""
        return self._base_url or self._configured_url

    def _learn_from_state(self, state: dict) -> None:
        self._state_model = state.get("model") or None
        if self._state_model and isinstance(state.get("context_length"), int):
            self._learned_context[self._state_model] = state["context_length"]

    async def _base(self) -> str:
        if self._base_url is None:
            self._base_url, state = await discover(self._configured_url, self.state_file, self.discover_cli)
            if state:
                self._learn_from_state(state)  # the launcher's service: it knows the model and its context
        return self._base_url

    def _client(self, base: str) -> openai.AsyncOpenAI:
        """The client for ``base``: one per event loop (its connections must not outlive or cross
        their loop); a rediscovered endpoint reuses the loop's connection pool."""
        loop = asyncio.get_running_loop()
        for key, (other_loop, _) in list(self._clients.items()):
            if other_loop.is_closed():
                del self._clients[key]  # its connections died with their loop
        entry = self._clients.get(id(loop))
        client = entry[1] if entry and entry[0] is loop and not entry[1].is_closed() else None
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=base, api_key=self.api_key or NO_KEY, max_retries=0,
                timeout=openai.Timeout(connect=self.connect_timeout,
                                       read=max(self.read_timeout, self.first_byte_timeout) + 5,
                                       write=30.0, pool=30.0),
                http_client=openai.DefaultAsyncHttpxClient(trust_env=False))  # a proxy must never see a local request
        elif str(client.base_url).rstrip("/") != base:
            client = client.with_options(base_url=base)
        self._clients[id(loop)] = (loop, client)
        return client

    def _unreachable(self, base: str, exc: Exception) -> EngineUnavailable:
        return EngineUnavailable(f"Foundry Local is not reachable at {base} ({_cause(exc)}).", START_HINT)

    async def _request(self, call: Callable[[openai.AsyncOpenAI], Awaitable[Any]]) -> Any:
        """``call(client)``; only connecting is retried (and rediscovered, for a discovered URL)."""
        delay = CONNECT_BACKOFF
        last: Exception | None = None
        dropped = False
        base = ""
        for attempt in range(CONNECT_ATTEMPTS):
            base = await self._base()
            try:
                return await call(self._client(base))
            except openai.APIConnectionError as exc:
                if isinstance(exc.__cause__, (httpx2.ConnectError, httpx2.ConnectTimeout)):
                    last = exc
                    if not self._configured_url:
                        self._base_url = None  # a restarted service may listen elsewhere
                        self._models_at = 0.0
                    if attempt + 1 < CONNECT_ATTEMPTS:
                        await asyncio.sleep(delay)
                        delay *= 2
                elif isinstance(exc, openai.APITimeoutError):
                    raise EngineTimeout(f"Foundry Local at {base} did not answer in time ({_cause(exc)}).",
                                        "Try again; if it persists, restart the service.") from exc
                elif dropped:
                    raise EngineUnavailable(f"Foundry Local at {base} dropped the connection ({_cause(exc)}).",
                                            START_HINT) from exc
                else:
                    # closed before any response byte (typically a kept-alive connection to a service
                    # that has restarted): nothing reached the user, so one more try is safe
                    dropped, last = True, exc
        raise self._unreachable(base or "its last address", last)

    # ---------------------------------------------------------------- models
    async def list_models(self) -> list[ModelInfo]:
        try:
            page = await self._request(lambda client: client.models.list())
            entries = [entry.model_dump() for entry in page.data]
        except openai.APIStatusError as exc:
            raise await self._status_error(exc, None) from exc
        except (AttributeError, TypeError, ValueError) as exc:  # not a {"data": [...]} listing
            raise GenerationFailed(f"Foundry Local sent an unreadable model list ({exc}).",
                                   "Check that FOUNDRY_BASE_URL points at an OpenAI-compatible /v1 base."
                                   ) from exc
        models = []
        for entry in entries:
            if not entry.get("id"):
                continue
            ctx = next((entry[k] for k in _CONTEXT_KEYS if isinstance(entry.get(k), int) and entry[k] > 0), None)
            models.append(ModelInfo(id=str(entry["id"]), engine=self.name,
                                    name=str(entry.get("display_name") or entry.get("alias") or entry["id"]),
                                    context_length=ctx))
        self._models, self._models_at = models, time.monotonic()
        return models

    async def _listing(self) -> list[ModelInfo]:
        if not self._models or time.monotonic() - self._models_at > MODELS_TTL:
            await self.list_models()
        return self._models

    async def resolve_model(self, model: str | None = None) -> str:
        """The id to send: the given/configured model (alias or id) as the service lists it."""
        await self._base()  # discovery also reads the launcher's model
        wanted = model or self._configured_model or self._state_model
        if wanted and wanted in self._resolved:
            return self._resolved[wanted]
        models = await self._listing()
        ids = [m.id for m in models]
        if not wanted:
            if not ids:
                raise ModelNotFound("Foundry Local lists no models.",
                                    "Load one first (`foundry model load phi-4-mini`, or `make foundry`).")
            return ids[0]
        found = resolve_alias(wanted, ids)
        if found is None:
            models = await self.list_models()  # refresh once: it may have been loaded just now
            ids = [m.id for m in models]
            found = resolve_alias(wanted, ids)
        if found is None:
            raise ModelNotFound(f"Foundry Local has no model '{wanted}'.",
                                f"Available: {', '.join(ids) or 'none'}. Set FOUNDRY_MODEL to one of them.")
        self._resolved[wanted] = found
        return found

    async def context_length(self, model: str | None = None) -> int:
        try:
            model_id = await self.resolve_model(model)
            for m in await self._listing():
                if m.id == model_id and m.context_length:
                    return m.context_length
            if model_id in self._learned_context:
                return self._learned_context[model_id]
        except EngineError:
            pass
        return self.default_context_length

    async def count_tokens(self, messages: list[Message], model: str | None = None) -> int:
        """An estimate: the service offers no tokenizer endpoint (about 4 tokens of framing a message)."""
        return sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages) + 2

    # ---------------------------------------------------------------- generation
    def stream(self, messages: list[Message], options: GenerationOptions | None = None,
               model: str | None = None) -> FoundryGeneration:
        return FoundryGeneration(self, list(messages), options or GenerationOptions(), model)

    def _body(self, model_id: str, messages: list[Message], options: GenerationOptions) -> dict:
        body: dict[str, Any] = {
            "model": model_id,
            "messages": messages,
            "stream": True,
            "max_tokens": int(options.max_new_tokens),
            "temperature": float(options.temperature),
            "top_p": float(options.top_p),
        }
        if options.stop:
            body["stop"] = list(options.stop)[:4]
        if options.seed is not None:
            body["seed"] = int(options.seed)
        if self._usage_supported:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _open_stream(self, model_id: str, messages: list[Message],
                           options: GenerationOptions) -> openai.AsyncStream:
        for attempt in range(2):
            try:
                return await self._request(
                    lambda client: client.chat.completions.create(**self._body(model_id, messages, options)))
            except openai.APIStatusError as exc:
                if (attempt == 0 and exc.status_code == 400 and self._usage_supported
                        and "stream_options" in error_text(exc.body).lower()):
                    self._usage_supported = False  # refused before any answer: safe to resend without
                    continue
                raise await self._status_error(exc, model_id) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _status_error(self, exc: openai.APIStatusError, model_id: str | None) -> EngineError:
        text = error_text(exc.body) or exc.response.reason_phrase
        return await self._classify(exc.status_code, text, model_id, str(exc.request.url))

    async def _classify(self, status: int, text: str, model_id: str | None, where: str) -> EngineError:
        """An error response (or an error event inside a stream) as a typed error; what it tells
        about the service (a model gone, a context length) is remembered."""
        available = None
        if names_unknown_model(status, text, model_id):
            self._resolved = {k: v for k, v in self._resolved.items() if v != model_id}
            self._models_at = 0.0
            try:
                available = [m.id for m in await self.list_models()]
            except EngineError:
                available = []
        err = classify(status, text, model_id, where, available)
        if isinstance(err, PromptTooLong) and err.context_length and model_id:
            self._learned_context[model_id] = err.context_length
        return err

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        clients, self._clients = list(self._clients.values()), {}
        for client_loop, client in clients:
            if client_loop is not loop:
                continue  # cannot be closed from here; dropped
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - a client of a closed loop
                pass
