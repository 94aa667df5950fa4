"""How rare a word is in English. A question's rare word that the library never mentions ("sshfs", "mosh",
"conda") names something the documents do not cover, as a capitalised name does ("Docker"): rag.answer.evidence
declines it. A rare word is not a misspelt common one ("packges"), nor a common word with a prefix or an
ending ("reinstalled", "misbehaves").

Frequencies: the wordfreq package's English list, on the Zipf scale (log10 of uses per billion words: 3 is
once per million words). The threshold was chosen on the dev documents (docs/BENCHMARKS.md, "Rare words").
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

RARE_ZIPF = 2.5  # rarer than about once in three million words of English
COMMON_ZIPF = 3.0  # a misspelling's intended word is at least this common
TYPO_LETTERS = 6  # shorter words are not read as misspellings (one letter off "mosh" is "most")
LONGEST = 30  # longer "words" (identifiers, pasted hashes) are not looked up
PREFIXES = ("re", "un", "mis", "dis", "non", "pre")
ENDINGS = ("s", "es", "ed", "d", "ing", "er", "ers")
_PARTS = re.compile(r"[^\W\d_]+")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=1)
def _table() -> dict[str, float]:
    from wordfreq import get_frequency_dict  # loaded once, on the first question (about 0.3 s)

    return get_frequency_dict("en")


def zipf(word: str) -> float:
    """The word's frequency on the Zipf scale; 0 for a word the list does not hold."""
    f = _table().get(word.lower(), 0.0)
    return math.log10(f) + 9 if f > 0 else 0.0


def rare(word: str) -> bool:
    """Whether ``word`` is rare in English: any of its parts ("conda-forge": conda, forge) of three letters
    or more is, with its prefix or ending taken off, rarer than ``RARE_ZIPF``, and not one letter away from a
    common word."""
    if len(word) > LONGEST:
        return False
    return any(_rare_part(p) for p in _PARTS.findall(word.lower()) if len(p) >= 3)


def _rare_part(w: str) -> bool:
    forms = {w} | {w[len(p):] for p in PREFIXES if w.startswith(p)} | {w[:-len(e)] for e in ENDINGS if w.endswith(e)}
    if any(zipf(f) >= RARE_ZIPF for f in forms if len(f) >= 3):
        return False
    return not (len(w) >= TYPO_LETTERS and any(zipf(e) >= COMMON_ZIPF for e in _one_letter_off(w)))


def _one_letter_off(w: str):
    """Every word one deletion, swap of neighbours, replacement or insertion away from ``w``."""
    for i in range(len(w) + 1):
        head, tail = w[:i], w[i:]
        if tail:
            yield head + tail[1:]
            if len(tail) > 1:
                yield head + tail[1] + tail[0] + tail[2:]
        for c in _LETTERS:
            if tail:
                yield head + c + tail[1:]
            yield head + c + tail
