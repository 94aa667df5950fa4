"""The typed events the pipeline yields; the chat, the CLI and the benchmarks render them.

    answer:  Retrieved -> [NothingFound] -> [Notice]* -> [Quoted] -> Token* -> [Revised] -> Sources -> Done
             (or Failed at any point); with the "auto" engine, before the first Token:
             ([FellBack] after a target's partial Token*)* -> Routed;
             [Queued]* before the model's first Token while the answer waits for its engine (rag.scheduler)
    ingest:  Progress* -> Ingested
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.base import ErrorCategory, Usage, category_of
from rag.answer.check import Checked
from rag.schema import Hit, Mode


@dataclass
class Retrieved:
    query: str
    hits: list[Hit]
    mode: Mode
    seconds: float
    scope: tuple[str, ...] | None = None  # the files searched; None = the whole library


@dataclass
class NothingFound:
    """Retrieval gave nothing to ground an answer on. ``answering`` says whether the model still
    answers (without passages, labelled as such) or the pipeline stops here."""

    reason: str  # "off" | "empty" | "irrelevant" | "weak" (evidence too thin: not answered) | "no-room"
    message: str
    answering: bool


@dataclass
class Notice:
    """Something the user should know about this answer (e.g. passages left out to fit)."""

    text: str


@dataclass
class Quoted:
    """What the documents say, before the model answers: the best sentence(s) of the passages."""

    quotes: list[tuple[str, Hit]]  # (sentence, the passage it is from)
    seconds: float  # from the question to this event

    @property
    def text(self) -> str:
        """As plain text: one "> sentence (file, p. N)" line per sentence."""
        return "\n".join(f"> {text} ({hit.chunk.citation()})" for text, hit in self.quotes)


@dataclass
class Queued:
    """The answer waits for its engine (rag.scheduler): its place in line (1: next) and the estimated
    seconds until it starts (None until an answer on this engine was measured). Repeated as it moves."""

    position: int
    eta_s: float | None = None

    @property
    def text(self) -> str:
        """"3rd in line — about 10 s"."""
        n = self.position
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        wait = f" — about {max(1, round(self.eta_s))} s" if self.eta_s is not None else ""
        return f"{n}{suffix} in line{wait}"


@dataclass
class Token:
    text: str


@dataclass
class Revised:
    """The model's answer after the checks: loops cut, ended at a sentence, each sentence checked
    against the passages (citations corrected, unsupported sentences marked). Replaces the streamed
    text."""

    text: str  # as the user should read it (marks included)
    sentences: list[Checked]
    looped: bool = False  # the model started repeating itself and was stopped
    cut: bool = False  # the length limit ended it; trimmed to the last full sentence

    @property
    def unsupported(self) -> list[str]:
        return [c.text for c in self.sentences if c.judged and not c.supported]


@dataclass
class Sources:
    cited: list[Hit]  # passages the answer cites with [n], in order of first citation
    used: list[Hit]  # every passage the prompt held, numbered 1..n in this order

    @property
    def shown(self) -> list[Hit]:
        return self.cited or self.used


@dataclass
class Done:
    """The answer ended: its usage, who wrote it, the quote and the (checked) answer, each on its own."""

    usage: Usage
    engine: str  # "" when no model answered (quote only)
    model: str
    quote: str  # the quote shown before the model's answer, as plain text ("" without one)
    answer: str  # the model's answer as the user reads it (checked: Revised.text), without the quote
    timings: dict = field(default_factory=dict)  # seconds: retrieval, first_text, prompt, generation, total

    @property
    def text(self) -> str:
        """What the user reads: the quote, then the answer."""
        return f"{self.quote}\n\n{self.answer}".strip() if self.quote else self.answer


@dataclass
class Routed:
    """The "auto" engine chose who answers: said once, before that target's first text."""

    engine: str  # registry name of the target that answers
    target: str  # "Foundry Local phi-4-mini"
    reason: str  # why this target: the rule that chose it, or what happened to the ones before it
    seconds: float  # from this target's request to its first text

    @property
    def text(self) -> str:
        return f"answered by {self.target}: {self.reason}"


@dataclass
class FellBack:
    """A routed target failed after streaming part of its answer: that text is kept, marked as
    interrupted, and the next target answers in full (its tokens follow)."""

    partial: str
    reason: str


@dataclass
class Failed:
    """The answer (or the ingest) ended with an error: a sentence to show, what to do, and its category
    (what the chat, the CLI and /v1 map: a label, an exit status, an HTTP status)."""

    error: str
    hint: str = ""
    category: ErrorCategory = ErrorCategory.INTERNAL
    retry_after: float | None = None  # BUSY: seconds until a retry should find room

    @property
    def text(self) -> str:
        return f"{self.error} {self.hint}".strip()

    @classmethod
    def of(cls, err: BaseException, error: str | None = None, hint: str | None = None) -> "Failed":
        """The event for ``err``: its category (``engines.base.category_of``), its message and hint
        unless ``error`` / ``hint`` say it better."""
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        return cls(message if error is None else error, getattr(err, "hint", "") if hint is None else hint,
                   category_of(err), getattr(err, "retry_after", None))


@dataclass
class Progress:
    """rag.library.IngestProgress passed through (stage, file, done, total)."""

    progress: Any


@dataclass
class Ingested:
    report: Any  # rag.library.IngestReport


Event = (Retrieved | NothingFound | Notice | Quoted | Token | Revised | Sources | Done | Failed | Progress | Ingested
         | Routed | FellBack | Queued)
