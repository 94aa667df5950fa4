"""A PDF's text layer, page by page, with its words whole: what ``pdf`` builds passages from.

Two engines, chosen by what the file holds:

1. **pdfium** (``pypdfium2``, PDFium's text layer, in this process), the default: 1 ms a page. PDFium marks
   a word hyphenated at a line end with U+0002 (groff) or U+FFFE (TeX) and joins the two lines; the break
   is put back as "-\\n" so that ``pdf_layout.dehyphenate`` decides, as for the other engine.
2. **poppler** (``pdftotext -raw``, the ``poppler-utils`` Debian package that OCR already needs: ``make
   ocr``), for a file whose first pages hold a ``TJ`` array ending in a kerning and an empty string
   (``[(GNU) -251.6 ()] TJ``: how groff's gropdf writes a space before a font change). PDFium drops that
   kerning, so it glues two words ("GNUfind") and shows a gap inside the next one on the line ("e
   xamines"); poppler places them right. The PDF goes in on stdin and the pages come back separated by
   form feeds; the command runs under the loader process's limits (the child inherits them) and
   ``PDFTOTEXT_TIMEOUT_S``. Where it is missing or fails, PDFium's text is used. Poppler is not the
   default: in content order (``-raw``) it puts a raised footnote number on a line of its own.

pypdf's text extraction is no longer used: on groff and word-processor PDFs it splits words where a line
is justified ("e xecuted", "ar gument": 3 % of the words of find(1) set by groff) and it is 7-15 times
slower (docs/BENCHMARKS.md, "PDF text").

Every page's text is folded to NFKC (``fold``): ligatures ("\ufb01" -> "fi"), non-breaking spaces,
full-width forms and other compatibility characters become the plain characters a user types and BM25 and
the embedder know.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import unicodedata

PDFTOTEXT = "pdftotext"
PDFTOTEXT_TIMEOUT_S = 120
ENGINES = ("poppler", "pdfium")
PDFIUM_LOCK = threading.Lock()
PAGES_CHECKED = 10  # the first pages whose content streams are looked at for PDFium's misplaced words
_DROPPED_KERN = re.compile(rb"\d\s*\(\)\s*\]\s*TJ")
# TeX draws an accented letter as a spacing accent then the letter ("Br\u00a8oker"): joined into one letter
# ("Br\u00f6ker"); NFKC would make the accent a space and a combining mark that splits the word
_ACCENTS = {"\u00a8": "\u0308", "\u00b4": "\u0301", "\u02c6": "\u0302", "\u02dc": "\u0303", "\u02c7": "\u030c",
            "\u02d8": "\u0306", "\u02d9": "\u0307", "\u02da": "\u030a", "\u02dd": "\u030b", "\u00af": "\u0304",
            "\u00b8": "\u0327"}
_ACCENT_LETTER = re.compile(f"([{''.join(_ACCENTS)}])([^\\W\\d_])")
_STRAY_MARK = re.compile(r" [\u0300-\u036f]")
_LONE = str.maketrans({"\u02dc": "~", "\u02c6": "^"})  # groff sets ~ and ^ as these: kept as the keys they are
_LINE_END_HYPHEN = str.maketrans({"\x02": "-\n", "\ufffe": "-\n"})  # PDFium's marks for a line-end hyphen


class TextLayerError(Exception):
    """An engine could not read this file's text layer (the next one is tried)."""


def fold(text: str) -> str:
    """One page's text as plain characters: line ends "\\n", NULs dropped, a spacing accent before a letter
    joined with it, a lone tilde or circumflex kept as "~" / "^" (groff's ``~.``, ``~/.ssh``), NFKC (ligatures,
    compatibility characters), any other accent left alone dropped; a soft hyphen
    is kept only at a line end, where it marks a broken word."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = text.replace("\u00ad\n", "-\n").replace("\u00ad", "")
    text = _ACCENT_LETTER.sub(lambda m: m.group(2) + _ACCENTS[m.group(1)], text).translate(_LONE)
    return _STRAY_MARK.sub("", unicodedata.normalize("NFKC", text))


def page_texts(data: bytes, n: int, engine: str | None = None, reader=None) -> tuple[list[str], list[str], str]:
    """(each page's folded text, warnings for pages that could not be read, the engine used) for a PDF of
    ``n`` pages. ``engine``: one of ``ENGINES`` (tests, benchmarks); default: poppler when ``reader`` (the
    file opened by pypdf) shows a kerning PDFium drops, else pdfium."""
    if engine not in (None, *ENGINES):
        raise ValueError(f"unknown PDF text engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "poppler" or engine is None and reader is not None and pdfium_misplaces(reader):
        try:
            return [fold(t) for t in poppler_pages(data, n)], [], "poppler"
        except TextLayerError:
            if engine == "poppler":
                raise
    pages, warnings = pdfium_pages(data, n)
    return [fold(t) for t in pages], warnings, "pdfium"


def pdfium_misplaces(reader) -> bool:
    """One of the first ``PAGES_CHECKED`` pages' content streams holds a ``TJ`` array ending in a kerning and
    an empty string, which PDFium drops (see the module doc)."""
    for i in range(min(PAGES_CHECKED, len(reader.pages))):
        try:
            contents = reader.pages[i].get_contents()
            if contents is not None and _DROPPED_KERN.search(contents.get_data()):
                return True
        except Exception:  # an unreadable stream: PDFium's text, as for any other file
            continue
    return False


def poppler_pages(data: bytes, n: int) -> list[str]:
    """``pdftotext -raw`` of the whole file, split at its form feeds into ``n`` pages."""
    exe = shutil.which(PDFTOTEXT)
    if exe is None:
        raise TextLayerError(f"`{PDFTOTEXT}` (poppler-utils) is not installed")
    cmd = [exe, "-q", "-raw", "-enc", "UTF-8", "-eol", "unix", "-", "-"]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=PDFTOTEXT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TextLayerError(f"{PDFTOTEXT}: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise TextLayerError(f"{PDFTOTEXT} exit code {done.returncode}")
    pages = done.stdout.decode("utf-8", "replace").split("\f")
    if pages and not pages[-1].strip():
        pages.pop()  # the form feed after the last page
    if len(pages) != n:
        raise TextLayerError(f"{PDFTOTEXT} gave {len(pages)} pages of {n}")
    return pages


def pdfium_pages(data: bytes, n: int) -> tuple[list[str], list[str]]:
    """PDFium's text of each page (hyphens at line ends put back), and a warning per unreadable page. PDFium
    is not thread-safe, even across documents: its calls hold ``PDFIUM_LOCK`` (a loader thread and the
    server's other threads may read PDFs at once), and every object is closed inside it (not by the garbage
    collector in some other thread)."""
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise TextLayerError(f"pypdfium2 is not installed: {exc}") from None
    pages: list[str] = []
    warnings: list[str] = []
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except Exception as exc:  # a file pypdf opens but PDFium does not: no text, said once
            return [""] * n, [f"the text layer could not be read ({type(exc).__name__})"]
        try:
            for i in range(n):
                try:
                    pages.append(_pdfium_page(doc, i))
                except Exception as exc:  # one broken page does not lose the rest
                    warnings.append(f"page {i + 1}: text could not be extracted ({type(exc).__name__})")
                    pages.append("")
        finally:
            doc.close()
    return pages, warnings


def _pdfium_page(doc, i: int) -> str:
    page = doc[i]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_range().translate(_LINE_END_HYPHEN)
        finally:
            textpage.close()
    finally:
        page.close()
