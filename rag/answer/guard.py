"""Keeps a streamed answer from looping and from ending mid-sentence, for any engine.

``LoopGuard`` reads the answer as it streams and says when the model has started to repeat itself:
a sentence (of four words or more) that it already wrote, a run of words (``ngram`` words long)
that has already appeared ``max_repeats`` times, or one word making up half of the last ``window``
words (a degenerate table, "A A A A" rows, or "10 * 10^9 + 10 * 10^8 + ..."; in the answer set's 212
answers this caught exactly those two and nothing else). The pipeline then stops the generation and keeps
the text before the repetition (``kept``). Engines that support a repetition penalty get one as
well (``GenerationOptions.repetition_penalty``); the guard is what holds for all of them.

``end_at_sentence`` trims an answer that a length limit cut to its last complete sentence.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"\w+")
# the end of a sentence: . ! ? (optionally closed by a quote/bracket/citation) then whitespace
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]|\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\])*(?=\s|$)")
# a character that _SENTENCE_END never reads past a stop: where its try from an earlier stop ended for good
_BEYOND_END = re.compile(r"[^.!?\"')\]\[\d,\s]")
_STOP = re.compile(r"[.!?]")


def _key(text: str) -> str:
    return " ".join(w.lower() for w in _WORD.findall(text))


class LoopGuard:
    def __init__(self, ngram: int = 8, max_repeats: int = 2, min_sentence_words: int = 4, window: int = 40):
        self.ngram, self.max_repeats, self.min_words, self.window = ngram, max_repeats, min_sentence_words, window
        self.text = ""
        self.looped = False
        self.kept = ""  # the answer up to where the loop began (set when looped)
        self._sentences: set[str] = set()
        self._done = 0  # characters of self.text already split into sentences
        self._settled = 0  # no sentence can end at a stop before this any more (at this one it may)
        self._counted = 0  # words of self.text already counted into n-grams
        self._words: list[tuple[str, int, int]] = []  # the complete words so far: (lowercase, start, end)
        self._scanned = 0  # where the text not yet split into complete words begins
        self._grams: dict[tuple, list[int]] = {}  # n-gram -> end offsets of its occurrences

    def feed(self, piece: str) -> bool:
        """Add a streamed piece; True once the answer loops (then ``kept`` is the text to keep)."""
        if self.looped:
            return True
        self.text += piece
        for m in _SENTENCE_END.finditer(self.text, max(self._done, self._settled)):
            sentence = self.text[self._done:m.end()]
            key = _key(sentence)
            if len(key.split()) >= self.min_words and key in self._sentences:
                return self._loop(self._done)
            self._sentences.add(key)
            self._done = m.end()
        self._settle(piece)
        return self._ngram_loop()

    def _settle(self, piece: str) -> None:
        """Move ``_settled`` to the first stop after the last character that a sentence end never reads: a
        stop before that which was no sentence end will never be one, so the next piece is not read again
        from the last sentence end (quadratic in an answer without one, a long list say)."""
        old = len(self.text) - len(piece)
        beyond = _BEYOND_END.search(piece[::-1])
        if beyond is None and self._settled < old:
            return  # the stops after the last such character are still the first to try
        stop = _STOP.search(self.text, len(self.text) - beyond.start() if beyond else old)
        self._settled = stop.start() if stop else len(self.text)

    def _ngram_loop(self) -> bool:
        """Count each complete run of ``ngram`` words once; a run seen more than ``max_repeats``
        times is a loop (the text is kept up to the end of its first occurrence)."""
        words = self._complete_words()
        n, win = self.ngram, self.window
        while self._counted < len(words):
            i = self._counted
            self._counted += 1
            if i + 1 >= win and (word := self._dominant(words[i - win + 1:i + 1])):
                return self._loop(self._run_start(words[:i + 1], word))
            if i + 1 < n:
                continue
            ends = self._grams.setdefault(tuple(w for w, _, _ in words[i - n + 1:i + 1]), [])
            ends.append(words[i][2])
            if len(ends) > self.max_repeats:
                return self._loop(ends[0])
        return False

    def _complete_words(self) -> list[tuple[str, int, int]]:
        """The words of the text so far, read once each (a word at the very end may go on in the next
        piece, so it waits): reading the whole text again for every piece was quadratic in the answer."""
        for m in _WORD.finditer(self.text, self._scanned):
            if m.end() == len(self.text):
                self._scanned = m.start()
                return self._words
            self._words.append((m.group().lower(), m.start(), m.end()))
        self._scanned = len(self.text)
        return self._words

    @staticmethod
    def _dominant(window: list[tuple[str, int, int]]) -> str | None:
        """The word that is at least half of the window's words, if one is."""
        counts: dict[str, int] = {}
        for w, _, _ in window:
            counts[w] = counts.get(w, 0) + 1
        word, n = max(counts.items(), key=lambda kv: kv[1])
        return word if 2 * n >= len(window) else None

    def _run_start(self, words: list[tuple[str, int, int]], word: str) -> int:
        """Where the degenerate run began: the start of the line (or of the sentence, if one ends later
        on that line) holding its earliest ``word`` from which on that word is still 60 % of the text
        (so the prose that led into it is kept)."""
        start, seen = words[-1][1], 0
        for k in range(len(words) - 1, -1, -1):
            w, a, _ = words[k]
            if w == word:
                seen += 1
                if 5 * seen >= 3 * (len(words) - k):
                    start = a
        return max(self.text.rfind("\n", 0, start) + 1, len(end_at_sentence(self.text[:start])))

    def _loop(self, cut: int) -> bool:
        self.looped = True
        self.kept = end_at_sentence(self.text[:cut]) or self.text[:cut].rstrip()
        return True


def end_at_sentence(text: str) -> str:
    """``text`` up to its last complete sentence ('' when it has none)."""
    last = None
    for m in _SENTENCE_END.finditer(text):
        last = m
    return text[:last.end()].rstrip() if last else ""


_FENCE_LINE = re.compile(r"^[ \t]+(```|~~~)", re.MULTILINE)


def tidy_fences(text: str) -> str:
    """Code fences moved to the start of their line (a small model indents them inside list items,
    where Markdown then closes the block early and a later fence opens one that swallows the rest),
    and a block left open closed."""
    text = _FENCE_LINE.sub(r"\1", text)
    if text.count("```") % 2:
        text = text.rstrip() + "\n```"
    return text


_EMPTY_ITEM = re.compile(r"\n[ \t]*(?:\d{1,3}[.)]|[-*+•])[ \t]*$")
_LAST_FENCE = re.compile(r"(?:^|\n)[ \t]*```[^`\n]*$")  # the last line is a fence
_TICK = re.compile(r"(?<!`)`(?!`)")  # a backtick of inline code, not of a ``` fence


def _empty_block_at_end(text: str) -> int | None:
    """Where a code block with nothing in it starts, when one ends ``text``: opened on the last line, or (the
    fences pairing up in order; ``tidy_fences`` closes a block left open) opened and closed on the last two."""
    last = _LAST_FENCE.search(text)
    if last is None:
        return None
    if text.count("```") % 2:
        return last.start()
    opening = _LAST_FENCE.search(text, 0, last.start())
    return opening.start() if opening else None


def finish(text: str, cut: bool = False, whole: bool = False) -> str:
    """The answer ended cleanly: at a sentence end, a closed code block or a list/heading line; else
    trimmed to its last complete sentence (when that keeps most of it, or always when ``whole``: the
    model's own short length ended it, and a sentence or two read better than one and a half), or marked
    unfinished with an ellipsis — after dropping the last word when a length limit ``cut`` it (it may be
    half a word). A list item the limit left empty ("11.") is dropped, and so is inline code the limit left
    open ("1. Open the `~/." ends at a full stop, but inside a path), a code block at the end with nothing in
    it (left open, or closed by ``tidy_fences``), and a lead-in whose list or code block it took."""
    stripped = _EMPTY_ITEM.sub("", text.rstrip()).rstrip()
    empty = _empty_block_at_end(stripped) if "```" in stripped else None
    if empty is not None:  # "Here's an example:\n```c" and nothing more: the empty block goes, and so does its lead-in
        stripped = stripped[:empty].rstrip()
        if stripped.endswith(":"):
            stripped = end_at_sentence(stripped[:-1]) or stripped
    after_fences = stripped.rfind("```") + 3 if "```" in stripped else 0  # (a backtick inside a block is code)
    ticks = [m.start() for m in _TICK.finditer(stripped, after_fences)]
    opened = len(ticks) % 2 == 1  # an inline `code` span left open: what it holds so far is not an end
    if opened:
        stripped = _EMPTY_ITEM.sub("", stripped[:ticks[-1]].rstrip()).rstrip()
    if not stripped or stripped[-1] in ".!?:;)\"'`*]…" or stripped.endswith("```"):
        return stripped
    kept = _EMPTY_ITEM.sub("", end_at_sentence(stripped)).rstrip()  # "2." ends a "sentence": not an item left empty
    if cut and kept.endswith(":"):  # a lead-in ("Here's how:") whose list the limit took away
        kept = end_at_sentence(kept) or kept
    if kept and (whole or len(kept) >= len(stripped) // 2):
        return kept
    if cut and not opened and " " in stripped:  # (before an open span, the last word is whole)
        stripped = without_last_word(stripped).rstrip(" ,;-")
    return stripped + " …"


_LAST_WORD = re.compile(r"\S*\s*")


def without_last_word(text: str) -> str:
    """``text`` without its last word and the whitespace before it. Matched on the reversed text at
    its start (one pass): searching forwards for "whitespace, a word, the end" retried every position
    of a long run of spaces, quadratic in the client's text (16,000 spaces: 2 s)."""
    return text[:len(text) - _LAST_WORD.match(text[::-1]).end()]
