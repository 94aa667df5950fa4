"""Every sentence of an answer checked against the passages the model was given.

A sentence is *supported by* a passage when the embedder finds a sentence of that passage close to it
(cosine >= ``MIN_COSINE``) or the passage holds most of its content terms (share >= ``MIN_COVERAGE``:
the BM25 tokenizer and stemmer, so "installing" matches "install") — and every identifier it names
(a command, option, variable, file or version: ``FND_API_KEY``, ``--with-foo``, ``config.yml``) occurs
in some passage or in the question: an invented identifier is what misleads a user most. Then:

- a sentence no passage supports is marked unsupported (the chat shows it; RUN.json lists it);
- a citation ``[n]`` whose passage does not support its sentence is moved to the passage that
  supports it best, or removed when none does; a supported sentence without a citation gets one;
- a sentence that repeats what was already shown (the quote) is left out.

Sentences of fewer than ``MIN_WORDS`` words or two content terms ("Yes.", "Here's how to do it:") are not
judged, except a short list item ("6. CSV (CSV)") none of whose terms any passage or the question holds:
a list of names is where a small model pads with invented ones, and it is marked unsupported. The thresholds and
the precision of the marks (read by hand) are in docs/BENCHMARKS.md, "Answers".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.answer.evidence import split
from rag.embedder import MIXED_BATCH
from rag.schema import Hit
from rag.search.lexical import tokenize
from rag.text import sentence_spans

MIN_COSINE = 0.6
MIN_COVERAGE = 0.7
MIN_WORDS = 4
REPEAT_SHARE = 0.9  # a sentence whose words are this much inside an already shown sentence repeats it
# (?<!\s): a citation's spaces are taken from where they begin; trying again from each space of a long
# run (where a match can only be the same one) was quadratic in the client's text
_CITE = re.compile(r"(?<!\s)\s*\[(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\]")
# identifiers: options, VARIABLE_NAMES, file.ext, paths, versions, calls(), `code`, CamelCase words
_IDENT = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]+|[A-Za-z]\w*_\w+|\w+\.[A-Za-z]{1,5}\b|/[\w.-]+(?:/[\w.-]+)*"
                    r"|\d+(?:\.\d+)+|\w+\(\)|`[^`]+`|[A-Z][a-z]+[A-Z]\w*)")
_WORD = re.compile(r"\w+")
_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*+•])\s*$")  # a list item's number or bullet, split off as a "sentence"
_BULLET_BEFORE = re.compile(r"\n[ \t]*[-*+•][ \t]*$")


@dataclass
class Checked:
    text: str  # the sentence as the user reads it (citations corrected)
    supported: bool
    cites: list[int] = field(default_factory=list)  # 1-based passage numbers after correction
    judged: bool = True  # False: too short to judge
    changed: bool = False  # a citation was moved, added or removed
    repeats: bool = False  # says again what was already shown (left out when rendered)
    gap: str = ""  # what separated it from the sentence before in the model's text (newlines, a list)
    invented: list[str] = field(default_factory=list)  # identifiers no passage (nor the question) holds


def citation_numbers(text: str) -> list[int]:
    """The passage numbers cited as [n] (also [1, 2]) in ``text``, in order of appearance."""
    return [int(n) for m in _CITE.finditer(text) for n in re.split(r"[,;]", m.group(1))]


def identifiers(text: str) -> set[str]:
    return {m.group(1).strip("`").lower() for m in _IDENT.finditer(text)}


def _repeats(sentence: str, shown: Sequence[set[str]]) -> bool:
    words = set(_WORD.findall(sentence.lower()))
    return len(words) >= MIN_WORDS and any(len(words & s) >= REPEAT_SHARE * len(words) for s in shown)


def check(embedder, answer: str, passages: Sequence[Hit], question: str = "",
          shown: Sequence[str] = ()) -> list[Checked]:
    """The answer's sentences, judged against ``passages`` (numbered 1..n as in the prompt);
    ``shown``: sentences the user has already read (the quote)."""
    spans = list(sentence_spans(answer or ""))
    raw = [answer[a:b] for a, b in spans]
    bare = [_CITE.sub("", s).strip() for s in raw]
    # judged: a claim of some length with at least two content terms ("Here's how to do it:" is none)
    judged = [len(b.split()) >= MIN_WORDS and len(set(tokenize(b))) >= 2 for b in bare]
    psents = [split(h.chunk.text) or [h.chunk.text] for h in passages]
    flat = [s for ss in psents for s in ss]
    owner = np.repeat(np.arange(len(psents)), [len(ss) for ss in psents])
    support = np.zeros((len(raw), len(passages)))
    todo = [i for i, j in enumerate(judged) if j]
    if todo and flat:
        have = [set(tokenize(h.chunk.text)) for h in passages]  # once, not once per sentence
        vecs = np.asarray(embedder.encode([bare[i] for i in todo] + flat, batch_size=MIXED_BATCH), dtype=np.float32)
        sims = vecs[:len(todo)] @ vecs[len(todo):].T
        for row, i in enumerate(todo):
            terms = set(tokenize(bare[i]))
            for p in range(len(passages)):
                cos = float(sims[row][owner == p].max()) if (owner == p).any() else 0.0
                cov = len(terms & have[p]) / len(terms) if terms else 0.0
                support[i, p] = max(cos / MIN_COSINE, cov / MIN_COVERAGE)  # >= 1: supported
    known = " ".join([question, *(h.chunk.text for h in passages)]).lower()
    known_terms = set(tokenize(known))

    def unknown_item(i: int) -> list[str]:
        """The terms of a short list item when none of them is known (else [])."""
        before = raw[i - 1].strip() if i else ""
        gap = answer[spans[i - 1][1] if i else 0:spans[i][0]]
        if not (_MARKER.match(before) or _BULLET_BEFORE.search(gap)):
            return []
        terms = [t for t in tokenize(bare[i]) if t.isalpha() and len(t) >= 2]
        return sorted(set(terms)) if terms and not any(t in known_terms for t in terms) else []
    shown_words = [set(_WORD.findall(t.lower())) for t in shown]
    out = []
    for i, s in enumerate(raw):
        cited = [n for n in citation_numbers(s) if 1 <= n <= len(passages)]
        if _repeats(bare[i], shown_words):
            out.append(Checked(s, True, cited, judged=False, repeats=True))
            continue
        if not judged[i]:
            invented = unknown_item(i)
            out.append(Checked(bare[i], False, [], invented=invented) if invented else Checked(s, True, cited, judged=False))
            continue
        invented = sorted(t for t in identifiers(bare[i]) if t not in known)
        ok = [p + 1 for p in np.argsort(-support[i]) if support[i, p] >= 1.0] if not invented else []
        if not ok:
            out.append(Checked(bare[i], False, [], changed=bool(cited), invented=invented))
            continue
        keep = [n for n in cited if n in ok] or ok[:1]
        text = s if keep == cited else bare[i].rstrip() + "".join(f" [{n}]" for n in keep)
        if keep != cited and text[-1:] not in ".!?" and bare[i].rstrip()[-1:] in ".!?":
            # put the citation before the full stop, as the model writes them
            text = bare[i].rstrip()[:-1] + "".join(f" [{n}]" for n in keep) + bare[i].rstrip()[-1]
        out.append(Checked(text, True, keep, changed=keep != cited))
    starts = [0] + [b for _, b in spans[:-1]]
    for c, (a, _), prev_end in zip(out, spans, starts):
        c.gap = answer[prev_end:a]
    return out


MARK = "⚠️"


def render(checked: Sequence[Checked]) -> str:
    """The answer as the user reads it: the sentences with the model's own line breaks between them
    (repeats left out), each unsupported one followed by ⚠️, and one line saying what the mark
    means (with how many sentences carry it)."""
    kept = [c for c in checked if not c.repeats]
    parts: list[str] = []  # joined once: adding to one string is quadratic where CPython cannot extend it
    started = False
    for c in kept:
        mark = "" if c.supported else ("\n" if c.text.rstrip().endswith("```") else " ") + MARK
        parts += [(c.gap or " ") if started else "", c.text, mark]
        started = started or bool(c.text or mark)
    text = "".join(parts).strip()
    if text.count("```") % 2:  # the model left a code block open: close it, or it swallows what follows
        text += "\n```"
    judged = [c for c in kept if c.judged]
    bad = sum(not c.supported for c in judged)
    if bad:
        text += f"\n\n*{MARK} not found in your documents ({bad} of {len(judged)} sentences)*"
    return text
