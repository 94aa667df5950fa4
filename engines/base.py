"""The one small interface every engine implements, its options, usage report, typed errors and the
error categories (``ErrorCategory``) shared with ``rag``.

An engine turns chat ``messages`` (OpenAI-style ``[{"role": ..., "content": ...}]``) into a stream
of text pieces: a :class:`Generation`, whose bookkeeping (usage, timing, cancel, how it ended) is
shared by every engine. The rest of the app only talks to this interface; ``engines.registry``
picks the engine by name and passes it its settings (``engines/`` reads no configuration itself).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import AsyncIterator, Protocol, runtime_checkable

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass
class GenerationOptions:
    """What a caller may ask of any engine. temperature 0 means greedy decoding."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # > 1 makes tokens already in the prompt or answer less likely (where the engine supports it: the
    # in-process engine does; an OpenAI-compatible endpoint has no such field, and Foundry Local refuses
    # frequency/presence penalties, so it is not sent there — the pipeline's loop guard holds for both)
    repetition_penalty: float = 1.0


@dataclass
class Usage:
    """Filled while a generation runs; complete once its stream ends."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None  # seconds from request to first text piece
    total_time: float = 0.0  # seconds from request to end of stream
    finish_reason: str | None = None  # "stop", "length", "cancelled", "error"

    @property
    def decode_seconds(self) -> float:
        if self.time_to_first_token is None:
            return 0.0
        return max(self.total_time - self.time_to_first_token, 0.0)

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: tokens after the first one over the time after the first one."""
        secs = self.decode_seconds
        if secs <= 0 or self.completion_tokens < 2:
            return 0.0
        return (self.completion_tokens - 1) / secs


@dataclass
class ModelInfo:
    id: str  # what to pass back as ``model``
    engine: str
    name: str = ""  # human label for the settings panel
    context_length: int | None = None
    path: str | None = None  # local folder, for in-process models


class ErrorCategory(str, Enum):
    """What kind of failure an error is: the one vocabulary every renderer maps (the chat's label, the
    CLI's exit status, /v1's HTTP status), never a class name. Each error class that can reach a
    pipeline event says its category in a ``category`` class attribute (engine errors here, the
    library's storage errors in ``rag.store``); anything else is ``INTERNAL``."""

    BAD_REQUEST = "bad_request"  # the question or an option cannot be used as given
    TOO_LONG = "too_long"  # the prompt does not fit the model's context
    NOT_FOUND = "not_found"  # the model asked for does not exist
    UNAVAILABLE = "unavailable"  # a service is down or not ready: an engine, its model, the library's database
    TIMEOUT = "timeout"  # no answer in time
    INTERRUPTED = "interrupted"  # the answer started and was cut off
    BUSY = "busy"  # too many questions wait already (rag.scheduler): retry later, the error says when
    INTERNAL = "internal"  # anything else: the message and the log say what


def category_of(err: BaseException) -> ErrorCategory:
    """``err``'s category: its class's ``category`` attribute, else ``INTERNAL``."""
    category = getattr(type(err), "category", None)
    return category if isinstance(category, ErrorCategory) else ErrorCategory.INTERNAL


class EngineError(Exception):
    """Base of all engine errors. ``str(err)`` is a sentence a user can read; ``hint`` says what to do."""

    category = ErrorCategory.INTERNAL

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        return f"{self.message} {self.hint}".strip()


class EngineUnavailable(EngineError):
    """The engine cannot be reached or started (service down, model folder missing...)."""

    category = ErrorCategory.UNAVAILABLE


class ModelNotFound(EngineError):
    """The requested model is not known to the engine."""

    category = ErrorCategory.NOT_FOUND


class ModelNotLoaded(EngineError):
    """The model exists but is not loaded by the service."""

    category = ErrorCategory.UNAVAILABLE


class PromptTooLong(EngineError):
    """The prompt plus the answer budget does not fit the model's context."""

    category = ErrorCategory.TOO_LONG

    def __init__(self, message: str, hint: str = "", prompt_tokens: int | None = None,
                 context_length: int | None = None):
        super().__init__(message, hint)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class EngineTimeout(EngineError):
    """No answer within the configured time."""

    category = ErrorCategory.TIMEOUT


class StreamBroken(EngineError):
    """The answer started but was cut off or arrived garbled."""

    category = ErrorCategory.INTERRUPTED


class GenerationFailed(EngineError):
    """Any other failure while generating."""


class Clock:
    """Measures time to first token and total time for a Usage."""

    def __init__(self, usage: Usage):
        self.usage = usage
        self.start = time.perf_counter()

    def piece(self) -> None:
        if self.usage.time_to_first_token is None:
            self.usage.time_to_first_token = time.perf_counter() - self.start

    def end(self) -> None:
        self.usage.total_time = time.perf_counter() - self.start


class Generation:
    """One running answer: iterate it (once) for text pieces; ``usage`` is final when iteration ends.

    The bookkeeping every engine shares lives here: the usage report and its clock (time to first
    piece, total time), cancelling, and how the answer ended (``usage.finish_reason``: what the
    engine reported, "cancelled" after ``cancel()`` or when the reader walks away half-way, "error"
    when an error was raised). An engine subclasses it and writes only ``_pieces()``, plus
    ``_stop()`` if it can interrupt work in progress.
    """

    def __init__(self, messages: list[Message], options: GenerationOptions, model: str | None):
        self.messages = messages
        self.options = options
        self.model = model
        self.usage = Usage()
        self._clock = Clock(self.usage)  # from the request
        self._iterated = False
        self._cancelled = False
        self._finished = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _pieces(self) -> AsyncIterator[str]:
        """The engine's text pieces. It fills ``usage`` (tokens, finish_reason) from what the engine
        reports, raises EngineError subclasses, and ends soon after ``cancelled`` turns true."""
        raise NotImplementedError

    def _stop(self) -> None:
        """Called once on cancel: interrupt whatever the answer is waiting for (no-op by default)."""

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterated:
            raise RuntimeError("a generation can be iterated only once")
        self._iterated = True
        return self._run()

    async def cancel(self) -> None:
        """Stop generating as soon as possible; iteration then ends with finish_reason 'cancelled'."""
        if self._finished or self._cancelled:
            return
        self._cancelled = True
        self._stop()

    async def _run(self) -> AsyncIterator[str]:
        pieces = self._pieces()
        failed = False
        try:
            async for piece in pieces:
                if self._cancelled:
                    break
                self._clock.piece()
                yield piece
        except Exception:
            failed = True
            raise
        except BaseException:  # the reader went away half-way (GeneratorExit) or was cancelled
            await self.cancel()
            raise
        finally:
            await pieces.aclose()
            self._end("error" if failed else None)

    def _end(self, reason: str | None) -> None:
        if self._finished:
            return
        self._finished = True
        if self._cancelled:
            self.usage.finish_reason = "cancelled"
        elif reason:
            self.usage.finish_reason = reason
        self._clock.end()


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. What differs between engines is said by attributes, so the app
    never has to name an engine."""

    name: str  # registry key, e.g. "onnx" or "foundry"
    label: str  # for the settings panel
    needs_service: bool  # True when answers come from a separate service that may not be running
    start_hint: str  # what to tell the user when that service cannot be reached ("" when none)

    async def list_models(self) -> list[ModelInfo]: ...

    def stream(self, messages: list[Message], options: GenerationOptions | None = None,
               model: str | None = None) -> Generation:
        """Start an answer. Errors are raised as EngineError subclasses from the iteration."""
        ...

    async def resolve_model(self, model: str | None = None) -> str:
        """The id this engine will use for ``model`` (an alias, an id, or None for its default)."""
        ...

    async def count_tokens(self, messages: list[Message], model: str | None = None) -> int:
        """Prompt tokens these messages would take (exact where the engine can tell, else an estimate)."""
        ...

    async def context_length(self, model: str | None = None) -> int: ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """Rough token count for engines that cannot tokenize locally (≈ 3.5 characters a token, rounded up)."""
    return int(len(text) / 3.5) + 1
