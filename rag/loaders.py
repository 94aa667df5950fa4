"""File -> ``Document``: structured text blocks (headings and paragraphs) with page numbers.

The type is decided by content and extension together (browsers send ``.md`` with a useless MIME
type, so MIME is never consulted): a file starting with ``%PDF-`` is a PDF whatever its name; a
``.pdf`` that does not is corrupt; text types are decoded (UTF-8, then cp1252, then Latin-1 with a
sanity check). Every bad file raises a ``LoaderError`` subclass whose message names the file and
the reason, so a batch can report it and go on.

PDFs: text per page (pypdf), running headers/footers (repeated lines, printed page numbers)
removed, headings found from the PDF outline (or numbered heading lines when there is none), and
pages that are a table of contents or an index (dot leaders, lines ending in page numbers) left
out of the document: they match heading-like questions word for word but hold no answers.
"""
from __future__ import annotations

import copy
import html
import io
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


# ---------------------------------------------------------------------------- errors
class LoaderError(Exception):
    """A file that cannot be indexed. ``str(err)`` names the file and the reason."""

    reason = "cannot be read"

    def __init__(self, path: str | Path, detail: str = ""):
        self.path = str(path)
        self.detail = detail
        msg = f"{Path(self.path).name}: {self.reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class CorruptFile(LoaderError):
    reason = "the file is damaged or not what its extension says"


class EncryptedFile(LoaderError):
    reason = "the PDF is encrypted (password protected); remove the password and add it again"


class EmptyFile(LoaderError):
    reason = "the file holds no text"


class BinaryFile(LoaderError):
    reason = "binary content, not text"


class FileTooLarge(LoaderError):
    reason = "the file is larger than the size limit"


class UnsupportedType(LoaderError):
    reason = "unsupported file type (supported: .pdf, .txt, .md, .rst, .html)"


class NoTextLayer(LoaderError):
    reason = "the PDF has no text layer (a scan?); run OCR on it first"


class UndecodableText(LoaderError):
    reason = "the text encoding could not be recognised"


# ---------------------------------------------------------------------------- data
@dataclass
class Block:
    text: str
    page: int | None = None  # 1-based page for PDFs
    kind: str = "text"  # "text" | "heading"
    level: int = 0  # heading level, 1 = top
    start: int = 0  # character offset in the page text (PDF) or the file text


@dataclass
class Document:
    source: str
    kind: str  # "pdf" | "markdown" | "rst" | "html" | "text"
    blocks: list[Block]
    title: str = ""
    pages: int = 0
    contents_pages: list[int] = field(default_factory=list)  # recognised contents/index pages, not indexed
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


TEXT_EXTS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
             ".rst": "rst", ".html": "html", ".htm": "html", ".xhtml": "html"}
SUPPORTED_EXTS = set(TEXT_EXTS) | {".pdf"}


def kind_for(path: Path, head: bytes = b"") -> str | None:
    """The loader kind by content and extension; None when unsupported."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    suffixes = [s.lower() for s in path.suffixes]
    ext = suffixes[-1] if suffixes else ""
    if ext == ".pdf":
        return "pdf"
    if ext in (".txt", ".text") and len(suffixes) >= 2 and suffixes[-2] in TEXT_EXTS:
        return TEXT_EXTS[suffixes[-2]]  # "intro.rst.txt" is reStructuredText
    kind = TEXT_EXTS.get(ext)
    if kind in ("text", "markdown") and re.match(rb"\s*(<!doctype html|<html)", head[:200], re.I):
        return "html"
    return kind


def is_supported(path: Path) -> bool:
    return kind_for(path) is not None


def load(path: str | Path, max_file_mb: float | None = 50.0, data: bytes | None = None) -> Document:
    """Read one file into a Document or raise a LoaderError."""
    path = Path(path)
    try:
        if data is None:
            size = path.stat().st_size
            if max_file_mb and size > max_file_mb * 1024 * 1024:
                raise FileTooLarge(path, f"{size / 1048576:.1f} MB > {max_file_mb:g} MB")
            data = path.read_bytes()
    except LoaderError:
        raise
    except FileNotFoundError:
        raise LoaderError(path, "file not found") from None
    except OSError as exc:
        raise LoaderError(path, exc.strerror or str(exc)) from None
    if max_file_mb and len(data) > max_file_mb * 1024 * 1024:
        raise FileTooLarge(path, f"{len(data) / 1048576:.1f} MB > {max_file_mb:g} MB")
    kind = kind_for(path, data[:1024])
    if kind is None:
        raise UnsupportedType(path, f"extension '{path.suffix or '(none)'}'")
    if not data.strip():
        raise EmptyFile(path)
    if kind == "pdf":
        if not data.startswith(b"%PDF-") and not data[:1024].lstrip().startswith(b"%PDF-"):
            raise CorruptFile(path, "no PDF header")
        return _load_pdf(path, data)
    text = decode_text(path, data)
    if not text.strip():
        raise EmptyFile(path)
    if kind == "html":
        blocks, title = _html_blocks(text)
    elif kind == "markdown":
        blocks, title = _markdown_blocks(text), ""
    elif kind == "rst":
        blocks, title = _rst_blocks(text), ""
    else:
        blocks, title = _plain_blocks(text), ""
    if not any(b.text.strip() for b in blocks if b.kind == "text"):
        if not blocks:
            raise EmptyFile(path)
    return Document(str(path), kind, blocks, title=title or _title_from(blocks) or path.stem)


# ---------------------------------------------------------------------------- text decoding
_C1 = re.compile("[\x80-\x9f]")
_CTRL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 (BOMs honoured), then cp1252, then Latin-1; binary or garbage raises."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UndecodableText(path, "invalid UTF-16") from None
    head = data[:8192]
    if b"\x00" in head:
        raise BinaryFile(path, "contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
        for enc in ("cp1252", "latin-1"):
            try:
                candidate = data.decode(enc)
            except UnicodeDecodeError:
                continue
            if len(_C1.findall(candidate)) <= max(2, len(candidate) // 200):
                text = candidate
                break
        if text is None:
            raise UndecodableText(path, "not UTF-8, cp1252 or Latin-1 text") from None
    sample = text[:20000]
    if sample and len(_CTRL.findall(sample)) > max(3, len(sample) // 100):
        raise BinaryFile(path, "too many control characters")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from(blocks: list[Block]) -> str:
    for b in blocks:
        if b.kind == "heading":
            return b.text
    return ""


# ---------------------------------------------------------------------------- plain / markdown / rst
def _paragraphs(text: str, base: int = 0, page: int | None = None) -> list[Block]:
    out = []
    for m in re.finditer(r"\S(?:.*?)(?=\n[ \t]*\n|\Z)", text, re.S):
        chunk = m.group(0).rstrip()
        if chunk:
            out.append(Block(chunk, page, "text", 0, base + m.start()))
    return out


def _plain_blocks(text: str) -> list[Block]:
    return _paragraphs(text)


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


def _markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.split("\n")
    buf: list[str] = []
    buf_start = 0
    pos = 0
    in_fence = False

    def flush():
        nonlocal buf
        if buf:
            blocks.extend(_paragraphs("\n".join(buf), buf_start))
            buf = []

    for i, line in enumerate(lines):
        line_start = pos
        pos += len(line) + 1
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence:
            m = _MD_HEADING.match(line)
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if m:
                flush()
                blocks.append(Block(m.group(2).strip(), None, "heading", len(m.group(1)), line_start))
                continue
            if line.strip() and re.fullmatch(r"(=+|-+)[ \t]*", nxt) and len(nxt.strip()) >= 3 \
                    and not line.lstrip().startswith(("-", "*", ">", "|")):
                flush()
                blocks.append(Block(line.strip(), None, "heading", 1 if nxt.strip()[0] == "=" else 2, line_start))
                continue
            if re.fullmatch(r"(=+|-+)[ \t]*", line) and blocks and blocks[-1].kind == "heading" \
                    and not buf:
                continue  # the underline of a setext heading
        if not buf:
            buf_start = line_start
        buf.append(line)
    flush()
    return blocks


_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")


def _rst_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.split("\n")
    levels: list[str] = []  # adornment styles in order of first appearance
    buf: list[str] = []
    buf_start = 0
    pos_of = []
    pos = 0
    for line in lines:
        pos_of.append(pos)
        pos += len(line) + 1

    def flush():
        nonlocal buf
        if buf:
            blocks.extend(_paragraphs("\n".join(buf), buf_start))
            buf = []

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        over = _RST_ADORN.match(line)
        # overline + title + underline
        if over and i + 2 < len(lines) and lines[i + 1].strip() and _RST_ADORN.match(lines[i + 2]) \
                and lines[i + 2].strip()[0] == line.strip()[0]:
            style = "o" + line.strip()[0]
            title = lines[i + 1].strip()
            flush()
            if style not in levels:
                levels.append(style)
            blocks.append(Block(title, None, "heading", levels.index(style) + 1, pos_of[i + 1]))
            i += 3
            continue
        under = _RST_ADORN.match(nxt)
        if line.strip() and not line[0].isspace() and under and len(nxt.strip()) >= len(line.strip()) - 1 \
                and not _RST_ADORN.match(line):
            style = nxt.strip()[0]
            flush()
            if style not in levels:
                levels.append(style)
            blocks.append(Block(line.strip(), None, "heading", levels.index(style) + 1, pos_of[i]))
            i += 2
            continue
        if not buf:
            buf_start = pos_of[i]
        buf.append(line)
        i += 1
    flush()
    return blocks


# ---------------------------------------------------------------------------- html
class _VisibleText(HTMLParser):
    SKIP = {"script", "style", "head", "template", "noscript", "svg", "iframe", "object"}
    BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "table", "tr", "br", "pre", "blockquote",
             "dd", "dt", "dl", "header", "footer", "nav", "main", "aside", "figure", "figcaption", "hr",
             "td", "th", "form", "fieldset"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.skip = 0
        self.heading: int | None = None
        self.title = ""
        self.in_title = False

    def _flush(self):
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.buf))
        text = re.sub(r" ?\n ?", "\n", text).strip()
        self.buf = []
        if text:
            if self.heading:
                self.blocks.append(Block(" ".join(text.split()), None, "heading", self.heading))
            else:
                self.blocks.append(Block(text, None, "text"))

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP:
            self.skip += 1
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = int(tag[1])
        elif tag in self.BLOCK:
            if tag in ("br", "li", "tr", "dt"):
                self.buf.append("\n")
            else:
                self._flush()

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = None
        elif tag in self.BLOCK and tag not in ("br", "li", "tr", "dt"):
            self._flush()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if not self.skip:
            self.buf.append(data)


def _html_blocks(text: str) -> tuple[list[Block], str]:
    parser = _VisibleText()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # malformed markup: fall back to stripping tags
        stripped = html.unescape(re.sub(r"<[^>]+>", " ", text))
        return _paragraphs(stripped), ""
    parser._flush()
    pos = 0
    for b in parser.blocks:
        b.start = pos
        pos += len(b.text) + 1
    return parser.blocks, " ".join(parser.title.split())


# ---------------------------------------------------------------------------- pdf
_LEADER = re.compile(r"(?:\.\s?){4,}\s*[\divxlc]+(?:\s*[,\u2013-]\s*\d+)*\s*$", re.I)
_ENDS_WITH_REFS = re.compile(r"^\S.{0,80}?[\s,]\d{1,4}(?:\s*[,\u2013-]\s*\d{1,4})*\s*$")
_NUMBERED_HEADING = re.compile(r"^((?:\d+|[A-Z])(?:\.\d+)*\.?)\s+([A-Z\u00c0-\u024f(\"'\u201c`].{1,110})$")
_PAGE_NUM_LINE = re.compile(r"^\s*([ivxlcdm]+|\d{1,4})\s*$", re.I)
_EDGE_NUM = re.compile(r"^\s*(\d{1,4})\b|\b(\d{1,4})\s*$")


def _norm_key(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).lower()
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


def is_reference_line(line: str) -> bool:
    """A line of a table of contents or an index: dot leaders, or a short line ending in page numbers."""
    s = line.strip()
    if not s:
        return False
    if _LEADER.search(s):
        return True
    return bool(_ENDS_WITH_REFS.match(s)) and len(s.split()) <= 10 and not s.endswith((".", ";", ")"))


def is_contents_page(lines: list[str]) -> bool:
    """Most lines are contents/index references (dot leaders, page numbers)."""
    body = [ln for ln in lines if ln.strip() and not _PAGE_NUM_LINE.match(ln)]
    if len(body) < 5:
        return False
    leaders = sum(1 for ln in body if _LEADER.search(ln.strip()))
    refs = sum(1 for ln in body if is_reference_line(ln))
    if leaders >= 4 and leaders / len(body) >= 0.35:
        return True
    return refs >= 8 and refs / len(body) >= 0.6


def _running_lines(pages: list[list[str]], outline: set[str] = frozenset()) -> list[set[int]]:
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
        counts.update({re.sub(r"\d+", "#", _norm_key(lines[i])) for i in edge[p]})
    threshold = max(3, int(0.3 * n))
    for p, lines in enumerate(pages):
        for i in edge[p]:
            key = re.sub(r"\d+", "#", _norm_key(lines[i]))
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
                    if o == off and len(pages[p][i].split()) <= 12 and not _heading_level(pages[p][i], outline):
                        drop[p].add(i)
    for p, lines in enumerate(pages):
        for i in edge[p]:
            if _PAGE_NUM_LINE.match(lines[i]):
                drop[p].add(i)
    return drop


def _outline_titles(reader) -> set[str]:
    titles: set[str] = set()

    def walk(items):
        for it in items:
            if isinstance(it, list):
                walk(it)
            else:
                try:
                    t = str(it.title or "")
                except Exception:
                    t = ""
                if t.strip():
                    titles.add(_norm_key(t))

    try:
        walk(reader.outline)
    except Exception:
        pass
    return titles


def _heading_level(line: str, outline: set[str]) -> int:
    """0 if the line is not a heading, else its level (from its section number, 1 if unnumbered)."""
    s = line.strip()
    if not s or len(s) > 120 or _LEADER.search(s):
        return 0
    m = _NUMBERED_HEADING.match(s)
    key = _norm_key(s)
    if outline:
        if key in outline:
            return (m.group(1).rstrip(".").count(".") + 1) if m else 1
        if m and _norm_key(m.group(2)) in outline:
            return m.group(1).rstrip(".").count(".") + 1
        return 0
    if m and len(s.split()) <= 14 and not s.endswith((".", ",", ";", ":")) and not re.search(r"\d\s*$", s):
        number = m.group(1).rstrip(".")
        if number.isdigit() and int(number) > 50:
            return 0
        return number.count(".") + 1
    return 0


_FONT_CACHE = threading.local()


def _install_font_cache() -> None:
    """Parse each font of a PDF once, not once per page that uses it.

    pypdf (7.x) builds a ``Font`` (encoding, ToUnicode CMap, widths) from the font dictionary on
    every page it extracts: ~12 % of extraction time on the R manuals. Within one ``_load_pdf``
    call the same font object yields the same ``Font``, so it is memoised by the identity of the
    (resolved, shared) font dictionary; outside ``_load_pdf`` pypdf behaves as shipped.
    """
    try:
        from pypdf.generic._font import Font
    except ImportError:  # another pypdf layout: no cache, same text
        return
    original = Font.__dict__.get("from_font_resource")
    if original is None or getattr(original, "_rag_cached", False):
        return
    func = original.__func__

    def from_font_resource(cls, pdf_font_dict):
        cache = getattr(_FONT_CACHE, "fonts", None)
        if cache is None:
            return func(cls, pdf_font_dict)
        hit = cache.get(id(pdf_font_dict))
        if hit is not None and hit[0] is pdf_font_dict:
            return copy.copy(hit[1])  # a copy: the caller may set space_width on it
        font = func(cls, pdf_font_dict)
        cache[id(pdf_font_dict)] = (pdf_font_dict, font)  # the dict is kept: its id is not reused
        return copy.copy(font)

    from_font_resource._rag_cached = True
    Font.from_font_resource = classmethod(from_font_resource)


def _load_pdf(path: Path, data: bytes) -> Document:
    _install_font_cache()
    _FONT_CACHE.fonts = {}
    try:
        return _load_pdf_text(path, data)
    finally:
        _FONT_CACHE.fonts = None


def _load_pdf_text(path: Path, data: bytes) -> Document:
    try:
        import pypdf
        from pypdf.errors import FileNotDecryptedError, PdfReadError
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LoaderError(path, f"pypdf is not installed: {exc}") from None
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise EncryptedFile(path)
        n = len(reader.pages)
    except LoaderError:
        raise
    except FileNotDecryptedError:
        raise EncryptedFile(path) from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, AssertionError) as exc:
        raise CorruptFile(path, f"{type(exc).__name__}: {exc}"[:200]) from None
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise CorruptFile(path, f"{type(exc).__name__}: {exc}"[:200]) from None
    if n == 0:
        raise CorruptFile(path, "no pages")
    warnings: list[str] = []
    pages: list[list[str]] = []
    for i, page in enumerate(reader.pages):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one broken page does not lose the rest
            warnings.append(f"page {i + 1}: text could not be extracted ({type(exc).__name__})")
            text = ""
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        pages.append(text.split("\n"))
    if not any(ln.strip() for lines in pages for ln in lines):
        raise NoTextLayer(path, f"{n} page(s), no extractable text")
    outline = _outline_titles(reader)
    drop = _running_lines(pages, outline)
    contents = [i + 1 for i, lines in enumerate(pages) if is_contents_page(lines)]
    if len(contents) == n:  # a document that is all lists: index it anyway
        contents = []
    blocks: list[Block] = []
    for p, lines in enumerate(pages):
        page_no = p + 1
        if page_no in contents:
            continue
        buf: list[str] = []
        buf_start = 0
        pos = 0
        refs_run: list[int] = []
        kept = [(i, ln) for i, ln in enumerate(lines) if i not in drop[p]]
        # runs of 3+ contents lines inside a normal page (e.g. a short contents below a title)
        skip: set[int] = set()
        for j, (_, ln) in enumerate(kept):
            if _LEADER.search(ln.strip()):
                refs_run.append(j)
            else:
                if len(refs_run) >= 3:
                    skip.update(refs_run)
                refs_run = []
        if len(refs_run) >= 3:
            skip.update(refs_run)
        for j, (_, ln) in enumerate(kept):
            line_start = pos
            pos += len(ln) + 1
            if j in skip:
                continue
            level = _heading_level(ln, outline)
            if level:
                if buf:
                    blocks.append(Block("\n".join(buf).strip(), page_no, "text", 0, buf_start))
                    buf = []
                blocks.append(Block(ln.strip(), page_no, "heading", level, line_start))
                continue
            if not buf:
                if not ln.strip():
                    continue
                buf_start = line_start
            buf.append(ln)
        if buf and "\n".join(buf).strip():
            blocks.append(Block("\n".join(buf).strip(), page_no, "text", 0, buf_start))
    if not any(b.kind == "text" for b in blocks):
        raise EmptyFile(path, "only contents/index pages")
    title = ""
    try:
        meta = reader.metadata
        title = str(meta.title or "") if meta else ""
    except Exception:
        pass
    return Document(str(path), "pdf", blocks, title=title.strip() or path.stem, pages=n,
                    contents_pages=contents, warnings=warnings)
