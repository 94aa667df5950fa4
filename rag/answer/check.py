"""Every sentence of an answer checked against the passages the model was given.

A sentence is *supported by* a passage when three things hold:

- the embedder finds a sentence of that passage close to it (cosine >= ``MIN_COSINE``) or the passage
  holds most of its content terms (share >= ``MIN_COVERAGE``: the BM25 tokenizer and stemmer, so
  "installing" matches "install");
- the passage (with the question) holds at least ``MIN_SHARE`` of its content terms: a sentence close in
  meaning whose words are mostly elsewhere ("a charitable trust funded by the United States government")
  says something the passage does not;
- every *salient* word of it stands in that passage or in the question: the identifiers (a command,
  option or flag, variable, file, path, version, call: ``-o``, ``--force``, ``ssh_config``,
  ``FND_API_KEY``), numbers and dates, CamelCase and ALLCAPS words, words with digits, and names (a
  capitalised word not opening the sentence: "created by the University of Vienna"). A sentence citing
  several passages may take them from all of them. An invented name or number is what misleads a user most.

Then:

- a sentence no passage supports is marked unsupported (the chat shows it; RUN.json lists it);
- a citation ``[n]`` whose passage does not support its sentence is moved to the passage that
  supports it best, or removed when none does; a supported sentence without a citation gets one;
- a sentence that repeats what was already shown (the quote) is left out;
- an answer none of whose sentences is supported is not printed: one line says so (``render``).

A fenced code block is one piece (``rag.text.sentence_spans``), supported when every line of it (spaces
aside) is a line of one passage: code the model copied is found, code it wrote is not.

Sentences of fewer than ``MIN_WORDS`` words or two content terms ("Yes.", "Here's how to do it:") are not
judged, except a short one naming a salient word no passage nor the question holds, and a short list
item ("6. CSV (CSV)") none of whose terms any passage or the question holds: a list of names is where a
small model pads with invented ones; both are marked unsupported. How well the marks catch what the
passages do not say (sentences labelled by reading, bench/data/claims): docs/BENCHMARKS.md, "Claims the
passages do not make" (``python -m rag bench claims``).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.answer.evidence import split
from rag.embedder import MIXED_BATCH
from rag.schema import Hit
from rag.search.lexical import tokenize
from rag.text import is_code, sentence_spans

MIN_COSINE = 0.6
MIN_COVERAGE = 0.7
MIN_WORDS = 4
MIN_SHARE = 0.5  # of a sentence's content terms, at least this share must be in its passage (or the question)
REPEAT_SHARE = 0.9  # a sentence whose words are this much inside an already shown sentence repeats it
# (?<!\s): a citation's spaces are taken from where they begin; trying again from each space of a long
# run (where a match can only be the same one) was quadratic in the client's text
_CITE = re.compile(r"(?<!\s)\s*\[(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\]")
# identifiers: options, VARIABLE_NAMES, file.ext, paths, versions, calls(), `code`, CamelCase words
_IDENT = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]+|[A-Za-z]\w*_\w+|\w+\.[A-Za-z]{1,5}\b|/[\w.-]+(?:/[\w.-]+)*"
                    r"|\d+(?:\.\d+)+|\w+\(\)|`[^`]+`|[A-Z][a-z]+[A-Z]\w*)")
# salient words besides identifiers: numbers and dates, ALLCAPS, words with digits, CamelCase (also iPhone),
# one-letter flags (-o), and capitalised words (names; the sentence's first word is left out)
_SALIENT = re.compile(r"(?<![\w-])(-[A-Za-z0-9]\b|\d+(?:[.,:/]\d+)*|(?:[A-Z]{2,}|\w*\d|[A-Za-z]*[a-z][A-Z])(?:[\w-]*\w)?"
                      r"|[A-Z][a-z]+|\w[\w.-]*@[\w.*-]*)(?![\w-])")
_OPENING = re.compile(r"^[\W\d_]*\w+")  # the sentence's first word (after a bullet, a number, ** or a quote)
_WORD = re.compile(r"\w+")
_QUOTED = re.compile(r"[\"“]([^\"“”\n]{2,40}?)[\"”]")  # a name the model puts in quotes: "Sign Up", "r-release"
# a courtesy line says nothing about the documents ("I hope this helps!", "Let me know if ...")
_COURTESY = re.compile(r"^\W*(?:I hope|Hope this|Let me know|Feel free|Good luck|Happy)\b|\bI'?m here to help\b", re.I)
_INNER_SEP = re.compile(r"(?<=[^\W_])[-_](?=[^\W_])")
_NOT_NAMES = {"e.g", "i.e", "etc"}
_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*+•])\s*$")  # a list item's number or bullet, split off as a "sentence"
_BULLET_BEFORE = re.compile(r"\n[ \t]*[-*+•][ \t]*$")
_LIST_START = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*+•])(?:\s+|$)")  # a list item's number or bullet: no claim
_BULLET_START = re.compile(r"^\s*[-*+•]\s")  # a list item split off with its bullet


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
    restates: bool = False  # not judged, and its salient words all stand in the question (a lead-in echoing it)


def citation_numbers(text: str) -> list[int]:
    """The passage numbers cited as [n] (also [1, 2]) in ``text``, in order of appearance."""
    return [int(n) for m in _CITE.finditer(text) for n in re.split(r"[,;]", m.group(1))]


def identifiers(text: str) -> set[str]:
    return {m.group(1).strip("`").lower() for m in _IDENT.finditer(text)}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("\u2010", "-")


def salient(text: str) -> set[str]:
    """What a sentence stands on and a user acts on: its identifiers (lower case) and its numbers, dates,
    flags, ALLCAPS, CamelCase, digit-bearing and capitalised words (a one-letter flag keeps its case:
    ``-L`` is not ``-l``; "I" and the sentence's first word are left out)."""
    text = _LIST_START.sub("", _fold(text))
    opening = _OPENING.match(text)
    start = opening.end() if opening else 0
    words = {w if re.fullmatch(r"-\w", w) else w.lower() for m in _SALIENT.finditer(text)
             for w in [m.group(1)] if w != "I" and (m.start() >= start or not re.fullmatch(r"[A-Z][a-z]+", w))}
    quoted = {m.group(1).strip().lower() for m in _QUOTED.finditer(text)}
    return (identifiers(text) | words | quoted) - _NOT_NAMES


def _stands_in(word: str, text: str, lower: str) -> bool:
    """``word`` occurs in the passage text as a whole word (a one-letter flag: with its case)."""
    if re.fullmatch(r"-\w", word):
        return re.search(r"(?<![\w-])" + re.escape(word) + r"(?!\w)", text) is not None
    # a separator inside a word may be any of them in the passage: x86-64, x86_64 and x86 64 (PDF text) are one
    parts = [r"\s+".join(map(re.escape, p.split())) for p in _INNER_SEP.split(word)]
    return re.search(r"(?<!\w)" + r"[-_\s]".join(parts) + r"(?!\w)", lower) is not None


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def _code_found(block: str, passage_lines: Sequence[set[str]]) -> list[int]:
    """The passages (1-based) that hold every line of the code ``block`` (spaces aside): code the model
    copied is found; code it wrote is not, however close its words are."""
    code = [line for line in _lines(block) if not line.startswith("```")]
    return [p + 1 for p, held in enumerate(passage_lines) if code and all(line in held for line in code)]


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
    # a question back ("What kind of essay is it?"), a lead-in ("Here are some guidelines:") or a courtesy says nothing
    # to check by meaning; its salient words still are
    code = [is_code(s) for s in raw]  # judged by its lines (_code_found), not by meaning
    judged = [len(b.split()) >= MIN_WORDS and len(set(tokenize(b))) >= 2 and b.rstrip("*_ ")[-1:] not in "?:"
              and not _COURTESY.search(b) and not c for b, c in zip(bare, code)]
    psents = [split(h.chunk.text) or [h.chunk.text] for h in passages]
    flat = [s for ss in psents for s in ss]
    owner = np.repeat(np.arange(len(psents)), [len(ss) for ss in psents])
    texts = [_fold(h.chunk.text) for h in passages]
    lowers = [t.lower() for t in texts]
    passage_lines = [set(_lines(t)) for t in texts] if any(code) else []
    q_text = _fold(question)
    have = [set(tokenize(t)) for t in texts]  # once, not once per sentence
    q_terms = set(tokenize(q_text))
    cos = np.zeros((len(raw), len(passages)))
    todo = [i for i, j in enumerate(judged) if j]
    if todo and flat:
        said = np.asarray(embedder.encode([bare[i] for i in todo], batch_size=MIXED_BATCH), dtype=np.float32)
        sims = said @ embedder.encode_sentences(flat).T  # the passages' sentences: mostly encoded for the quote
        for row, i in enumerate(todo):
            for p in range(len(passages)):
                cos[i, p] = float(sims[row][owner == p].max()) if (owner == p).any() else 0.0
    known = " ".join([q_text, *texts])
    known_terms = set(tokenize(known))

    q_lower = q_text.lower()

    def asked(word: str) -> bool:
        """The salient ``word`` stands in the question."""
        return _stands_in(word, q_text, q_lower)

    def holds(words: set[str], ps: Sequence[int]) -> set[str]:
        """The salient ``words`` that neither the passages ``ps`` nor the question hold."""
        return {w for w in words if not asked(w) and not any(_stands_in(w, texts[p], lowers[p]) for p in ps)}

    def support(i: int, ps: Sequence[int], words: set[str]) -> float:
        """>= 1: the passages ``ps`` together support sentence ``i`` (see the module docstring)."""
        terms = set(tokenize(bare[i]))
        if not terms or holds(words, ps):
            return 0.0
        held = set().union(*(have[p] for p in ps))
        share = len(terms & (held | q_terms)) / len(terms)
        if share < MIN_SHARE:
            return 0.0
        return max(max(cos[i, p] for p in ps) / MIN_COSINE, len(terms & held) / len(terms) / MIN_COVERAGE)

    def unknown_item(i: int) -> list[str]:
        """The terms of a short list item when none of them is known (else [])."""
        before = raw[i - 1].strip() if i else ""
        gap = answer[spans[i - 1][1] if i else 0:spans[i][0]]
        if not (_MARKER.match(before) or _BULLET_BEFORE.search(gap) or _BULLET_START.match(raw[i])):
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
        if code[i]:
            found = _code_found(_fold(s), passage_lines)
            out.append(Checked(s, bool(found), found[:1]))
            continue
        words = salient(bare[i])
        invented = sorted(holds(words, range(len(passages))))
        if not judged[i]:
            invented = invented or unknown_item(i)
            restates = bool(words) and all(asked(w) for w in words)
            out.append(Checked(bare[i], False, [], invented=invented) if invented else
                       Checked(s, True, cited, judged=False, restates=restates))
            continue
        scores = [support(i, [p], words) for p in range(len(passages))]
        ok = [p + 1 for p in np.argsort(-np.asarray(scores), kind="stable") if scores[p] >= 1.0]
        if len(cited) > 1 and not set(cited) <= set(ok) and support(i, [n - 1 for n in cited], words) >= 1.0:
            ok = list(dict.fromkeys(cited + ok))  # a sentence joining what its cited passages say together
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
NOTHING_ADDED = "*The model's own answer is left out: nothing in it is found in your documents.*"


def render(checked: Sequence[Checked]) -> str:
    """The answer as the user reads it: the sentences with the model's own line breaks between them
    (repeats left out), each unsupported one followed by ⚠️, and one line saying what the mark
    means (with how many sentences carry it). When every judged sentence is unsupported (and the rest
    are lead-ins or list numbers: no code, no name the question does not name), the model added nothing the
    documents support: the answer is ``NOTHING_ADDED`` alone (no marked sentence, so no line about the mark)."""
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
    content = [c for c in kept if not c.judged and c.supported
               and ("`" in c.text or (not c.restates and salient(_CITE.sub("", c.text))))]
    if bad and bad == len(judged) and not content:
        # nothing the check can support (the rest lead-ins, list numbers, or lead-ins naming only what the question
        # names: "Here's how to install Writer2LaTeX as a LibreOffice extension:"): one line, not the marked sentences
        return NOTHING_ADDED
    if bad:
        text += f"\n\n*{MARK} not found in your documents ({bad} of {len(judged)} sentences)*"
    return text
