"""Question + chat history + retrieved passages -> chat messages that fit the model's context.

The prompt is laid out as

    system:    how to answer (grounded in the numbered passages, cite them as [1], [2], ...),
               then the numbered passages, each headed by its file name, page and heading
    user/assistant ...: earlier turns of this chat (text only, their passages are not repeated)
    user:      the question

(Passages in the system message, the question alone last: with SmolLM2-135M this layout gave
answers, where passages inside the user message were mostly echoed back.)

Token budget: the answer's length is what the user chose, else ``default_answer_tokens(model)`` (by the
model's family); ``answer_tokens(context_length, max_new_tokens)`` is reserved for the answer (at most
half the context) and the rest, ``context_length - answer tokens``, is what the prompt may use;
``fit`` does both and ``refit`` shrinks the budget after an engine said the prompt was too long. When the full prompt
does not fit, the lowest-ranked passages are dropped first (the best one is kept), then the oldest
history turns, then the one remaining passage is cut short; only if the system text and the
question alone do not fit is :class:`engines.base.PromptTooLong` raised. The result never exceeds
the budget as measured by the counter the caller passes (an engine's ``count_tokens`` or any sync
function ``messages -> int``).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence, Union

from engines.base import Message, PromptTooLong, estimate_tokens
from rag.schema import Hit

SYSTEM_GROUNDED = (
    "You are Local RAG Chat, an assistant that answers questions about the user's documents. "
    "Answer using only the numbered passages below. After each statement, cite "
    "the passage it comes from in square brackets, like [1] or [2]. If the passages do not contain "
    "the answer, say that the documents do not answer the question; do not invent an answer. "
    "Be concise."
)

SYSTEM_NO_PASSAGES = (
    "You are Local RAG Chat, a helpful assistant. No passages from the user's documents are "
    "available for this question, so answer from general knowledge, say that the answer does not "
    "come from the user's documents, and be concise. Never invent citations."
)

# Earlier turns kept at most (user + assistant messages); the budget may drop more.
MAX_HISTORY_MESSAGES = 8

Counter = Callable[[list[Message]], Union[int, Awaitable[int]]]

_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{0,40}\|>|</?s>|\[/?INST\]")
# a line's own leading blanks only ([^\S\n], not \s): \s ran on over the next lines from every line start of
# a run of empty lines, quadratic; what the line holds before the "[n]" is kept either way
_FAKE_HEADER = re.compile(r"^([^\S\n]*(?:passage\s*)?)\[(\d{1,3})\]", re.MULTILINE | re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Prompt:
    """The messages to send and what went into them."""

    messages: list[Message]
    hits: list[Hit]  # the passages in the prompt, numbered 1..n in this order
    tokens: int  # prompt tokens as counted
    budget: int  # tokens the prompt could use
    dropped_passages: int = 0
    dropped_history: int = 0  # history messages left out
    truncated: bool = False  # a passage was cut short to fit
    notes: list[str] = field(default_factory=list)

    @property
    def grounded(self) -> bool:
        return bool(self.hits)


def clean_passage(text: str) -> str:
    """Passage text as plain data: no chat-template control tokens, no line that looks like
    another passage's ``[n]`` header, no control characters. Everything else is kept verbatim."""
    text = _CONTROL.sub(" ", text)
    text = _SPECIAL_TOKEN.sub(lambda m: m.group(0).replace("|", "¦").replace("<", "‹").replace(">", "›")
                              .replace("[", "(").replace("]", ")"), text)
    text = _FAKE_HEADER.sub(lambda m: f"{m.group(1)}({m.group(2)})", text)
    return text.strip()


def passage_label(hit: Hit) -> str:
    chunk = hit.chunk
    label = chunk.name
    if chunk.page:
        label += f", page {chunk.page}"
    if chunk.heading:
        label += f" — {clean_passage(chunk.heading)[:120]}"
    return label


def format_passages(hits: Sequence[Hit], texts: Sequence[str] | None = None) -> str:
    texts = texts if texts is not None else [clean_passage(h.chunk.text) for h in hits]
    blocks = [f"Passage [{i}] ({passage_label(h)}):\n{t}" for i, (h, t) in enumerate(zip(hits, texts), start=1)]
    return "\n\n".join(blocks)


def system_message(hits: Sequence[Hit], texts: Sequence[str] | None = None, system: str | None = None) -> str:
    if not hits:
        return system or SYSTEM_NO_PASSAGES
    return f"{system or SYSTEM_GROUNDED}\n\n{format_passages(hits, texts)}"


def history_messages(history: Sequence[Message] | None) -> list[Message]:
    """Keep well-formed user/assistant turns, newest last, at most MAX_HISTORY_MESSAGES."""
    kept = [{"role": m["role"], "content": str(m.get("content", ""))}
            for m in (history or []) if m.get("role") in ("user", "assistant") and m.get("content")]
    return kept[-MAX_HISTORY_MESSAGES:]


def estimate_counter(messages: list[Message]) -> int:
    """A sync counter for callers without an engine: ~3.5 characters a token + 4 per message."""
    return sum(estimate_tokens(m["content"]) + 4 for m in messages) + 2


async def _count(counter: Counter, messages: list[Message]) -> int:
    value = counter(messages)
    if inspect.isawaitable(value):
        value = await value
    return int(value)


async def build(question: str, history: Sequence[Message] | None, hits: Sequence[Hit], *,
                counter: Counter = estimate_counter, context_length: int, max_new_tokens: int,
                system: str | None = None) -> Prompt:
    """The largest prompt (by the dropping order above) whose token count fits the budget."""
    budget = int(context_length) - int(max_new_tokens)
    hist = history_messages(history)
    hits = list(hits)
    texts = [clean_passage(h.chunk.text) for h in hits]

    def assemble(n_hits: int, n_hist: int, cut: str | None = None) -> list[Message]:
        used_texts = texts[:n_hits]
        if cut is not None and n_hits:
            used_texts = used_texts[:-1] + [cut]
        msgs = [{"role": "system", "content": system_message(hits[:n_hits], used_texts, system)}]
        msgs += hist[len(hist) - n_hist:] if n_hist else []
        msgs.append({"role": "user", "content": question.strip()})
        return msgs

    def result(msgs, n_hits, n_hist, tokens, truncated=False) -> Prompt:
        p = Prompt(messages=msgs, hits=hits[:n_hits], tokens=tokens, budget=budget,
                   dropped_passages=len(hits) - n_hits, dropped_history=len(hist) - n_hist,
                   truncated=truncated)
        if p.dropped_passages:
            p.notes.append(f"{p.dropped_passages} lower-ranked passage(s) left out to fit the model's context")
        if p.dropped_history:
            p.notes.append(f"{p.dropped_history} earlier message(s) left out to fit the model's context")
        if truncated:
            p.notes.append("a long passage was shortened to fit the model's context")
        return p

    # The floor: system text and the question with nothing else. If that does not fit, fail clearly.
    floor_msgs = [{"role": "system", "content": system or SYSTEM_NO_PASSAGES},
                  {"role": "user", "content": question.strip()}]
    floor = await _count(counter, floor_msgs)
    if budget <= 0 or floor > budget:
        raise PromptTooLong(
            f"The question does not fit the model's context ({floor} prompt tokens, "
            f"{max(budget, 0)} available after reserving {max_new_tokens} for the answer).",
            "Shorten the question, lower 'Max answer tokens', or choose a model with a larger context.",
            prompt_tokens=floor, context_length=context_length)

    n_hits, n_hist = len(hits), len(hist)
    # 1. drop lowest-ranked passages, keeping the best one
    while True:
        msgs = assemble(n_hits, n_hist)
        tokens = await _count(counter, msgs)
        if tokens <= budget:
            return result(msgs, n_hits, n_hist, tokens)
        if n_hits > 1:
            n_hits -= 1
        elif n_hist > 0:  # 2. then the oldest history (in user/assistant pairs where possible)
            n_hist = max(n_hist - 2, 0) if n_hist % 2 == 0 else n_hist - 1
        else:
            break
    if n_hits == 0:  # no passages and no history, yet over budget: only the system text differs
        msgs = floor_msgs
        return result(msgs, 0, 0, floor)

    # 3. one passage, no history, still too long: cut the passage (proportionally, then tighten)
    text = texts[0]
    for _ in range(12):
        over = tokens - budget
        chars_per_token = max(len(text) / max(await _count(counter, [{"role": "user", "content": text}]), 1), 1.0)
        keep = int(len(text) - over * chars_per_token * 1.15) - 8
        if keep < 40:
            break
        text = text[:keep].rstrip() + " …"
        msgs = assemble(1, 0, cut=text)
        tokens = await _count(counter, msgs)
        if tokens <= budget:
            return result(msgs, 1, 0, tokens, truncated=True)
    # the passage cannot usefully fit: answer without passages (the floor fits, checked above)
    p = result(floor_msgs, 0, 0, floor)
    p.dropped_passages = len(hits)
    p.notes.append("no passage fits the model's context next to this question")
    return p


# The answer's length when nobody chose one (``max_new_tokens`` 0: LRC_MAX_NEW_TOKENS, the chat's slider, the
# CLI's --max-tokens, /v1's max_tokens), by model family. The small SmolLM2 models write their best in the first
# sentence or two after the quote and invent the rest: at 64 tokens they hold twice the supported share of
# sentences that 384 do, and every answer figure the same (docs/BENCHMARKS.md, "A shorter answer?"). Larger
# models keep the longer answer (not measured here: no such model is at hand offline).
SHORT_ANSWER_FAMILIES = ("smollm2",)
SHORT_ANSWER_TOKENS = 64
ANSWER_TOKENS = 384
OWN_LENGTH = f"0: the model's own length, {SHORT_ANSWER_TOKENS} for SmolLM2 and {ANSWER_TOKENS} for others"


def default_answer_tokens(model_id: str) -> int:
    """The answer's length for the model ``model_id`` (an id, folder or path) when the user chose none."""
    name = str(model_id).lower()
    return SHORT_ANSWER_TOKENS if any(family in name for family in SHORT_ANSWER_FAMILIES) else ANSWER_TOKENS


def answer_tokens(context_length: int, max_new_tokens: int) -> int:
    """Tokens reserved for the answer: what was asked, but at most half the context (at least 16)."""
    return min(int(max_new_tokens), max(int(context_length) // 2, 16))


@dataclass
class Fitted:
    """A prompt and the answer budget it was built for."""

    prompt: Prompt
    context_length: int
    max_new_tokens: int  # pass to the engine as the answer's limit


async def fit(question: str, history: Sequence[Message] | None, hits: Sequence[Hit], *,
              counter: Counter = estimate_counter, context_length: int, max_new_tokens: int) -> Fitted:
    """The prompt for a model with ``context_length`` tokens and an answer of up to ``max_new_tokens``."""
    budget = answer_tokens(context_length, max_new_tokens)
    prompt = await build(question, history, hits, counter=counter, context_length=context_length,
                         max_new_tokens=budget)
    return Fitted(prompt, int(context_length), budget)


def refit(err: PromptTooLong, fitted: Fitted) -> tuple[int, int]:
    """After an engine refused ``fitted`` as too long (our count was off, or the context is smaller
    than we were told): the (context_length, max_new_tokens) to build a smaller prompt with, scaled
    by how far off our count was, with a 10 % margin."""
    real_ctx = err.context_length or fitted.context_length
    answer = fitted.max_new_tokens
    ratio = max((err.prompt_tokens or 0) / max(fitted.prompt.tokens, 1), 1.0)
    room = int((real_ctx - answer) / ratio * 0.9)
    if room <= 0:
        answer = max(real_ctx // 4, 16)
        room = int((real_ctx - answer) / ratio * 0.9)
    return room + answer, answer
