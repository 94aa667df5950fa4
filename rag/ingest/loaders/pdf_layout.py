"""Reading a PDF page's lines: what is a heading, a running header/footer, or a table-of-contents /
index line. Pure functions over text lines (no pypdf), so each rule can be tested on its own.

- Contents and index pages (dot leaders, short lines ending in page numbers) are left out of the
  document: they match heading-like questions word for word but hold no answers.
- Running headers/footers: the same line (digits masked) at the top/bottom of many pages, or a
  printed page number at the edge with a constant offset to the PDF page index.
- Headings: the PDF outline's titles when it has an outline, else numbered heading lines.
- Footnotes at a page's foot are set apart as paragraphs; words hyphenated at a line end are joined
  again, judged by the document's own vocabulary.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

# a contents line's dot leader and page number(s): "2.1 What is R? . . . . . 3"
LEADER = re.compile(r"(?:\.\s?){4,}\s*[\divxlc]+(?:\s*[,\u2013-]\s*\d+)*\s*$", re.I)
_ENDS_WITH_REFS = re.compile(r"^\S.{0,80}?[\s,]\d{1,4}(?:\s*[,\u2013-]\s*\d{1,4})*\s*$")
_NUMBERED_HEADING = re.compile(r"^((?:\d+|[A-Z])(?:\.\d+)*\.?)\s+([A-Z\u00c0-\u024f(\"'\u201c`].{1,110})$")
_PAGE_NUM_LINE = re.compile(r"^\s*([ivxlcdm]+|\d{1,4})\s*$", re.I)
_EDGE_NUM = re.compile(r"^\s*(\d{1,4})\b|\b(\d{1,4})\s*$")


def norm_key(s: str) -> str:
    """A line compared loosely: accents, case and punctuation dropped."""
    s = unicodedata.normalize("NFKD", s).lower()
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


def is_reference_line(line: str) -> bool:
    """A line of a table of contents or an index: dot leaders, or a short line ending in page numbers."""
    s = line.strip()
    if not s:
        return False
    if LEADER.search(s):
        return True
    return bool(_ENDS_WITH_REFS.match(s)) and len(s.split()) <= 10 and not s.endswith((".", ";", ")"))


def is_contents_page(lines: list[str]) -> bool:
    """Most lines are contents/index references (dot leaders, page numbers)."""
    body = [ln for ln in lines if ln.strip() and not _PAGE_NUM_LINE.match(ln)]
    if len(body) < 5:
        return False
    leaders = sum(1 for ln in body if LEADER.search(ln.strip()))
    refs = sum(1 for ln in body if is_reference_line(ln))
    if leaders >= 4 and leaders / len(body) >= 0.35:
        return True
    return refs >= 8 and refs / len(body) >= 0.6


def contents_runs(lines: list[str]) -> set[int]:
    """Indexes of runs of 3+ dot-leader lines inside a normal page (e.g. a short contents below a title)."""
    skip: set[int] = set()
    run: list[int] = []
    for j, ln in enumerate(lines):
        if LEADER.search(ln.strip()):
            run.append(j)
        else:
            if len(run) >= 3:
                skip.update(run)
            run = []
    if len(run) >= 3:
        skip.update(run)
    return skip


def running_lines(pages: list[list[str]], outline: set[str] = frozenset()) -> list[set[int]]:
    """Indices of running header/footer lines on each page (top/bottom two lines)."""
    n = len(pages)
    drop: list[set[int]] = [set() for _ in pages]
    if n < 3:
        return drop
    edge = []
    for lines in pages:
        idx = [i for i, ln in enumerate(lines) if ln.strip()]
        edge.append(idx[:2] + idx[-2:] if len(idx) > 4 else idx)
    # 1) the same line (digits masked) at the edge of many pages
    counts: Counter = Counter()
    for p, lines in enumerate(pages):
        counts.update({re.sub(r"\d+", "#", norm_key(lines[i])) for i in edge[p]})
    threshold = max(3, int(0.3 * n))
    for p, lines in enumerate(pages):
        for i in edge[p]:
            key = re.sub(r"\d+", "#", norm_key(lines[i]))
            if key and counts[key] >= threshold:
                drop[p].add(i)
    # 2) a printed page number at the edge with a constant offset to the PDF page index
    offsets: Counter = Counter()
    found: list[list[tuple[int, int]]] = []
    for p, lines in enumerate(pages):
        cand = []
        for i in edge[p]:
            for m in _EDGE_NUM.finditer(lines[i].strip()):
                num = int(m.group(1) or m.group(2))
                cand.append((i, num - p))
        found.append(cand)
        offsets.update({off for _, off in cand})
    if offsets:
        off, cnt = offsets.most_common(1)[0]
        if cnt >= max(3, int(0.3 * n)):
            for p, cand in enumerate(found):
                for i, o in cand:
                    if o == off and len(pages[p][i].split()) <= 12 and not heading_level(pages[p][i], outline):
                        drop[p].add(i)
    for p, lines in enumerate(pages):
        for i in edge[p]:
            if _PAGE_NUM_LINE.match(lines[i]):
                drop[p].add(i)
    return drop


def heading_level(line: str, outline: set[str]) -> int:
    """0 if the line is not a heading, else its level (from its section number, 1 if unnumbered).
    ``outline``: the PDF outline's titles as ``norm_key`` gives them (empty: no outline)."""
    s = line.strip()
    if not s or len(s) > 120 or LEADER.search(s):
        return 0
    m = _NUMBERED_HEADING.match(s)
    key = norm_key(s)
    if outline:
        if key in outline:
            return (m.group(1).rstrip(".").count(".") + 1) if m else 1
        if m and norm_key(m.group(2)) in outline:
            return m.group(1).rstrip(".").count(".") + 1
        return 0
    if m and len(s.split()) <= 14 and not s.endswith((".", ",", ";", ":")) and not re.search(r"\d\s*$", s):
        number = m.group(1).rstrip(".")
        if number.isdigit() and int(number) > 50:
            return 0
        return number.count(".") + 1
    return 0


# ------------------------------------------------------------------ words broken at a line end
# Typeset manuals break words across lines ("reposi-" / "tory"); joined with a space they reach
# the embedder and BM25 as two non-words. A break is undone with the document's own vocabulary.
_BREAK = re.compile(r"([A-Za-z]+)-\n([a-z]+)")
_WORDISH = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def vocabulary(pages: list[list[str]]) -> tuple[set[str], set[str]]:
    """(words, hyphenated pairs) written whole somewhere in the document, lower case; the halves of
    words broken at a line end do not count."""
    text = _BREAK.sub(" ", "\n".join("\n".join(lines) for lines in pages))
    words: set[str] = set()
    pairs: set[str] = set()
    for w in _WORDISH.findall(text):
        parts = w.lower().split("-")
        words.update(parts)
        pairs.update(f"{a}-{b}" for a, b in zip(parts, parts[1:]))
    return words, pairs


def dehyphenate(text: str, vocab: tuple[set[str], set[str]]) -> str:
    """Undo line-end hyphenation in ``text``: "reposi-\\ntory" -> "repository" when the document writes
    "repository" (or does not write "reposi-tory" and both halves are not words of it); a compound
    the document writes with its hyphen elsewhere ("Debian-based", "--with-internal-tzcode"), whose
    halves are both its words, or that starts with an acronym ("MIT-style") keeps the hyphen."""
    words, pairs = vocab

    def fix(m: re.Match) -> str:
        a, b = m.group(1), m.group(2)
        joined, pair = (a + b).lower(), f"{a}-{b}".lower()
        if joined in words:
            return a + b
        if pair in pairs or (a.lower() in words and b in words) or (len(a) > 1 and a.isupper()):
            return f"{a}-{b}"
        return a + b

    return _BREAK.sub(fix, text)


# ------------------------------------------------------------------ footnotes
# A typeset page ends with its footnotes ("12 This does not necessarily disable ..."), which pypdf
# runs on from the last body line ("... CXX20PICFLAGS 12 This does not ..."): one "sentence" that
# a quote would show. Each footnote is set apart as its own paragraph (its number kept).
_NOTE = re.compile(r"^(\d{1,3})\s+[A-Za-z\u2018\u201c(\"'].*$")
NOTE_LINES = 4  # lines a footnote may run to


def footnote_start(lines: list[str]) -> int | None:
    """Index of the page's first footnote line, or None: from there to the end, lines that start with
    consecutive numbers ("12 ...", "13 ...") each marked in the body above ("texi2dvi.14", "noweb/4.")."""
    starts = [i for i, ln in enumerate(lines) if _NOTE.match(ln.strip()) and not LEADER.search(ln)]
    for k in starts:
        nums = [int(lines[i].split()[0]) for i in starts if i >= k]
        if nums != list(range(nums[0], nums[0] + len(nums))) or len(lines) - k > NOTE_LINES * len(nums):
            continue
        body = "\n".join(lines[:k])
        if all(re.search(rf"(?<=[^\s\d]){n}(?!\d)", body) for n in nums):
            return k
    return None


def set_apart_footnotes(lines: list[str]) -> list[str]:
    """``lines`` with a blank line before each footnote (a paragraph break: sentences end there)."""
    k = footnote_start(lines)
    if k is None:
        return lines
    out = list(lines[:k])
    for ln in lines[k:]:
        if _NOTE.match(ln.strip()):
            out.append("")
        out.append(ln)
    return out
