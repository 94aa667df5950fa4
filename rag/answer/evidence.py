"""The sentences of the retrieved passages that answer the question.

Each passage is split into sentences; every sentence is scored against the question by the
library's embedder (cosine of normalised vectors) plus how much of the question's weighted terms
it holds (the BM25 tokenizer and stemmer; idf over the sentences at hand). From the scores come:

- the **quote**: the best sentence(s), shown to the user before the model answers;
- the **context**: the best sentences with their neighbours, per passage in document order, within
  a token budget — what the model reads instead of whole passages (shorter prompt, faster first
  token, less to copy wrongly);
- **whether to answer at all**: the documents do not answer the question when it names something
  they never mention (a capitalised name such as "Docker" or "RStudio", not at the start of the
  question, none of whose terms occurs in the library), or when the best sentence scores below a
  threshold.

The weights were chosen on the dev part of bench/data/answers (docs/BENCHMARKS.md, "Answers"), the threshold
on the dev documents of bench/data/unseen ("When to decline").
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from rag.schema import Hit
from rag.search.lexical import tokenize
from rag.text import is_code, sentence_spans

LEXICAL_WEIGHT = 0.3  # share of the term-coverage score in a sentence's score
RANK_PRIOR = 0.05  # subtracted per passage rank below the first (retrieval's order counts too)
ANSWER_THRESHOLD = 0.25  # best sentence score below this: the documents do not answer (0.3 until 2026-12-07;
# docs/BENCHMARKS.md "When to decline": chosen on the dev documents, where 0.3 refused 5 of 60 answerable facts)
QUOTE_SENTENCES = 3  # sentences quoted before the model answers
NEXT_BONUS = 0.05  # added to the score of the sentence after the best one when choosing the quote
MIN_WORDS = 3  # shorter "sentences" (page numbers, stray headings) are not scored
_SPACE = re.compile(r"\s+")


@dataclass
class Sentence:
    text: str  # whitespace collapsed
    hit: int  # index of its passage in the hits
    pos: int  # index among that passage's sentences
    score: float = 0.0
    dense: float = 0.0
    lexical: float = 0.0


@dataclass
class Evidence:
    question: str
    hits: list[Hit]
    sentences: list[list[Sentence]] = field(default_factory=list)  # per passage, in text order
    ranked: list[Sentence] = field(default_factory=list)  # best first
    quotes: list[Sentence] = field(default_factory=list)
    answerable: bool = False
    unknown_names: list[str] = field(default_factory=list)  # names in the question the library never mentions

    @property
    def best(self) -> float:
        return self.ranked[0].score if self.ranked else 0.0


def split(text: str) -> list[str]:
    """The sentences of a passage that are scored and can be quoted, whitespace collapsed: not a fenced
    code block (a quote line cannot show one; the model still reads the passage whole) nor a scrap shorter
    than MIN_WORDS."""
    out = []
    for a, b in sentence_spans(text):
        if is_code(text[a:b]):
            continue
        s = _SPACE.sub(" ", text[a:b]).strip()
        if len(s.split()) >= MIN_WORDS:
            out.append(s)
    return out


def term_coverage(question: str, sentences: Sequence[str]) -> np.ndarray:
    """Share of the question's terms (weighted by idf over ``sentences``) each sentence holds."""
    q = set(tokenize(question))
    if not q or not sentences:
        return np.zeros(len(sentences))
    terms = [set(tokenize(s)) for s in sentences]
    df = Counter(t for ts in terms for t in ts & q)
    n = len(sentences)
    idf = {t: math.log(1 + n / (1 + df[t])) for t in q}
    total = sum(idf.values())
    return np.array([sum(idf[t] for t in ts & q) / total for ts in terms])


_NAME = re.compile(r"(?<![\w.\-])([A-Za-z][\w.+\-]*[A-Za-z0-9+])")


def names(question: str) -> list[str]:
    """Words of the question that look like names: a capital letter not at the start of a sentence
    (Docker, RStudio, WSL, macOS)."""
    out = []
    for m in _NAME.finditer(question):
        word = m.group(1)
        if not any(c.isupper() for c in word):
            continue
        before = _before(question, m.start())
        if before and before not in ".!?:\"(":
            out.append(word)
    return out


def _before(text: str, pos: int) -> str:
    """The last character before ``pos`` that is not whitespace ('' if none). Looked up backwards over
    the spaces only: copying the text before each word was quadratic in a long question."""
    i = pos
    while i and text[i - 1].isspace():
        i -= 1
    return text[i - 1] if i else ""


def unknown_names(question: str, unknown_terms) -> list[str]:
    """Names in ``question`` whose whole word the library never holds (``unknown_terms(text)``: the
    library's answer for which terms of a text occur nowhere). Only the whole word counts: "RStudio"
    is not mentioned by a library that has "R" and "studio" apart."""
    whole = {w: tokenize(w)[:1] for w in names(question)}
    whole = {w: t[0] for w, t in whole.items() if t}
    if not whole:
        return []
    missing = set(unknown_terms(" ".join(whole)))
    return [w for w, t in whole.items() if t in missing]


def select(embedder, question: str, hits: Sequence[Hit], *, unknown_terms=None, conversation: str | None = None,
           lexical_weight: float = LEXICAL_WEIGHT, rank_prior: float = RANK_PRIOR,
           threshold: float = ANSWER_THRESHOLD) -> Evidence:
    """Score the passages' sentences against ``question`` (CPU work: call it off the event loop).
    ``unknown_terms``: the library's ``unknown_terms`` (names the library never mentions make the
    question unanswerable); None skips that check. ``conversation``: for a follow-up, the question
    with its context (rag.answer.followup); the sentences are ranked by the question itself, but a
    sentence close to either counts for deciding whether the documents answer."""
    ev = Evidence(question, list(hits))
    if unknown_terms is not None:
        ev.unknown_names = unknown_names(question, unknown_terms)
    flat: list[Sentence] = []
    for i, h in enumerate(ev.hits):
        ss = [Sentence(t, i, j) for j, t in enumerate(split(h.chunk.text))]
        ev.sentences.append(ss)
        flat += ss
    if not flat:
        return ev
    texts = [s.text for s in flat]
    vecs = embedder.encode_sentences(texts)

    ranks = np.array([s.hit for s in flat], dtype=np.float32)

    def scores(query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dense, lexical, combined) score of every sentence for ``query``."""
        qv = np.asarray(embedder.encode_query(query), dtype=np.float32).reshape(-1)
        dense, lexical = vecs @ qv, term_coverage(query, texts)
        return dense, lexical, (1 - lexical_weight) * dense + lexical_weight * lexical - rank_prior * ranks

    for s, d, l, c in zip(flat, *scores(question)):
        s.dense, s.lexical, s.score = float(d), float(l), float(c)
    ev.ranked = sorted(flat, key=lambda s: -s.score)
    best = ev.best
    if conversation and conversation.strip() != question.strip():
        best = max(best, float(scores(conversation)[2].max()))
    ev.answerable = best >= threshold and not ev.unknown_names
    ev.quotes = _quote(ev)
    return ev


def _quote(ev: Evidence) -> list[Sentence]:
    """The ``QUOTE_SENTENCES`` best sentences, each once (passages overlap, so two of them can hold the same
    one). The sentence after the best one counts ``NEXT_BONUS`` more (an answer often follows the sentence that
    names the topic: "... unpack it with:" then the command). A question the document asks (an FAQ's "Which
    file types can I add?": close to the user's words, but no answer) is quoted as the sentence after it, its
    answer."""
    best = _answer_to(ev, ev.ranked[0])
    after = _after(ev, best)
    after = after if after is not None and not _asks(after) else None
    order = sorted(ev.ranked, key=lambda s: -(s.score + (NEXT_BONUS if s is after else 0.0)))
    quotes: list[Sentence] = []
    for a in (_answer_to(ev, s) for s in order):
        if len(quotes) == QUOTE_SENTENCES:
            break
        if not _asks(a) and all(a.text != q.text for q in quotes):
            quotes.append(a)
    quotes = [_with_what_it_introduces(ev, q, quotes) for q in quotes]
    # shown passage by passage (the one with the best sentence first), each passage's sentences in the text's order
    first: dict[int, int] = {}  # passage -> where its first quoted sentence was chosen
    for i, q in enumerate(quotes):
        first.setdefault(q.hit, i)
    return sorted(quotes, key=lambda q: (first[q.hit], q.pos)) or [best]


def _with_what_it_introduces(ev: Evidence, q: Sentence, quotes: list[Sentence]) -> Sentence:
    """A quoted lead-in ("The files created by update-mime-database are:") with the sentence after it in its
    passage (the first of what it introduces), unless that one is quoted too: alone it says nothing."""
    after = _after(ev, q)
    if not q.text.endswith(":") or after is None or any((a.hit, a.pos) == (after.hit, after.pos) for a in quotes):
        return q
    return replace(q, text=f"{q.text} {after.text}")


def _after(ev: Evidence, s: Sentence) -> Sentence | None:
    """The sentence after ``s`` in its passage."""
    following = ev.sentences[s.hit][s.pos + 1:s.pos + 2]
    return following[0] if following else None


_QUESTION = re.compile(r"[^\W\d_][\"'\u201d)]?\?$")  # "... can I add?", not "~?" (an escape) nor "a=1?"


def _asks(s: Sentence) -> bool:
    return bool(_QUESTION.search(s.text.rstrip()))


def _answer_to(ev: Evidence, s: Sentence) -> Sentence:
    """``s``, or the sentence after it in its passage when ``s`` is a question (the answer follows it)."""
    after = _after(ev, s)
    return after if _asks(s) and after is not None else s


def context(ev: Evidence, budget_tokens: int, neighbours: int = 1) -> list[Hit]:
    """The passages the model reads: for the best sentences (best first, until ``budget_tokens``, estimated,
    is used: settings().context_tokens in the chat)
    the sentence and its neighbours, joined per passage in text order ('…' where text was left out).
    Returns copies of the hits (same source, page, rank) whose text is that selection, best passage
    first; passages with nothing selected are left out."""
    chosen: dict[int, set[int]] = {}
    used = 0
    for s in ev.ranked:
        if used >= budget_tokens:
            break
        span = range(max(0, s.pos - neighbours), min(len(ev.sentences[s.hit]), s.pos + neighbours + 1))
        new = [j for j in span if j not in chosen.get(s.hit, set())]
        cost = sum(_estimate(ev.sentences[s.hit][j].text) for j in new)
        if used and used + cost > budget_tokens:
            continue
        chosen.setdefault(s.hit, set()).update(new)
        used += cost
    order = sorted(chosen, key=lambda i: min(-x.score for x in ev.sentences[i] if x.pos in chosen[i]))
    out = []
    for i in order:
        parts, last = [], None
        for j in sorted(chosen[i]):
            if last is not None and j != last + 1:
                parts.append("…")
            parts.append(ev.sentences[i][j].text)
            last = j
        h = ev.hits[i]
        out.append(replace(h, chunk=replace(h.chunk, text=" ".join(parts))))
    return out


def _estimate(text: str) -> int:
    return int(len(text) / 3.5) + 1
