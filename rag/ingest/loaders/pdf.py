"""PDF: text per page (``pdf_text``: poppler's pdftotext, else PDFium; ligatures and compatibility
characters folded), running headers/footers removed, footnotes set apart, words hyphenated at a
line end joined again, headings found from the PDF outline
(or numbered heading lines when there is none), and contents/index pages left out (see
``pdf_layout``). Block offsets are character offsets in the page text. pypdf opens the file: the
encryption check, the page count and its limit, the outline, the title and the scanned-page test.

Scanned pages are read by OCR (``ocr``): a page whose text layer holds fewer than
``SCANNED_MAX_CHARS`` letters and digits and that shows a page-sized image (each side >= 300 px, the
page's proportions within 20 %; in a PDF with no text layer at all, any image of >= 200 px) is
rendered and read by Tesseract; its lines then go through the same steps as extracted text, and its
Blocks are marked ``ocr``. Pages with text are never rendered, so a PDF with a text layer loads as
fast as before. A PDF without text and without page images (blank pages) is ``NoTextLayer``.

Hostile PDFs: one with more than ``LRC_MAX_PAGES`` pages is refused (``TooManyPages``: refused rather than
read in part, so nobody searches half a document without knowing it); a scanned page too large to render
within ``LRC_OCR_MAX_PIXELS`` is rendered at a lower resolution, or left out with a warning (``ocr``);
pypdf itself caps what one stream may inflate to (75 MB); the text engines run under the loader
process's limits (``rag.ingest.limits``)."""
from __future__ import annotations

import io
import logging
from pathlib import Path

from rag.ingest.loaders import ocr as ocr_mod
from rag.ingest.loaders import pdf_layout as layout
from rag.ingest.loaders import pdf_text
from rag.ingest.loaders.base import Block, Document
from rag.ingest.loaders.errors import CorruptFile, EmptyFile, EncryptedFile, LoaderError, NoTextLayer, TooManyPages

SCANNED_MAX_CHARS = 50  # a page with fewer letters/digits in its text layer may be a scan (a stamp, a page number)
_SCAN_MIN_SIDE = 300  # pixels: a page image, not an icon
_ANY_MIN_SIDE = 200


def load_pdf(path: Path, data: bytes, ocr: ocr_mod.OcrOptions | None = None,
             progress: ocr_mod.Progress | None = None) -> Document:
    reader, n = _open(path, data)
    texts, warnings, _engine = pdf_text.page_texts(data, n, reader=reader)
    pages = [t.split("\n") for t in texts]
    text_layer = any(ln.strip() for lines in pages for ln in lines)
    scanned = _scanned_pages(reader, pages, text_layer)
    if not scanned and not text_layer:
        raise NoTextLayer(path, f"{n} page(s), no text and no scanned page images")
    options = (ocr or ocr_mod.OcrOptions.from_settings()) if scanned else ocr_mod.OcrOptions()
    ocr_pages = _read_scans(path, data, pages, scanned, options, progress, warnings, _sizes(reader, scanned))
    if not any(ln.strip() for lines in pages for ln in lines):
        if options.max_pages <= 0:
            raise NoTextLayer(path, f"{len(scanned)} scanned page(s) and OCR is off (LRC_OCR_MAX_PAGES=0)")
        too_big = [w for w in warnings if "LRC_OCR_MAX_PIXELS" in w]
        raise ocr_mod.NoTextFound(path, f"{min(len(scanned), options.max_pages)} scanned page(s) read"
                                  + (f"; {too_big[0]}" if too_big else ""))
    outline = _outline_titles(reader)
    drop = layout.running_lines(pages, outline)
    contents = [i + 1 for i, lines in enumerate(pages) if layout.is_contents_page(lines)]
    if len(contents) == n:  # a document that is all lists: index it anyway
        contents = []
    blocks: list[Block] = []
    for p, lines in enumerate(pages):
        if p + 1 not in contents:
            kept = layout.set_apart_footnotes([ln for i, ln in enumerate(lines) if i not in drop[p]])
            found = page_blocks(kept, p + 1, outline)
            for b in found:
                b.ocr = p + 1 in ocr_pages
            blocks.extend(found)
    vocab = layout.vocabulary(pages)  # words broken at a line end come back whole
    for b in blocks:
        if b.kind == "text":
            b.text = layout.dehyphenate(b.text, vocab)
    if not any(b.kind == "text" for b in blocks):
        raise EmptyFile(path, "only contents/index pages")
    return Document(str(path), "pdf", blocks, title=_title(reader) or path.stem, pages=n,
                    contents_pages=contents, warnings=warnings, ocr_pages=sorted(ocr_pages))


def _sizes(reader, numbers: list[int]) -> dict[int, tuple[float, float]]:
    """Width and height (points) of the area pdftoppm renders (the crop box) of these pages (1-based)."""
    out = {}
    for p in numbers:
        try:
            box = reader.pages[p - 1].cropbox
            out[p] = (abs(float(box.width)), abs(float(box.height)))
        except Exception:  # an unreadable box: rendered as pdftoppm sees it
            continue
    return out


def _read_scans(path: Path, data: bytes, pages: list[list[str]], scanned: list[int], options: ocr_mod.OcrOptions,
                progress, warnings: list[str], sizes: dict[int, tuple[float, float]]) -> set[int]:
    """OCR of the scanned pages (within the limit) into ``pages``; the pages whose text came from OCR."""
    if not scanned:
        return set()
    if options.max_pages <= 0:
        warnings.append(f"{len(scanned)} scanned page(s) not read: OCR is off (LRC_OCR_MAX_PAGES=0)")
        return set()
    todo, notes = ocr_mod.limited(scanned, options)
    got = ocr_mod.read_pdf_pages(path, data, todo, options, progress, sizes)
    warnings.extend(notes + got.warnings)
    blank = [p for p in got.read if p not in got.texts]
    if blank:
        warnings.append(f"no text found by OCR on page(s) {', '.join(map(str, blank[:10]))}"
                        + (" ..." if len(blank) > 10 else ""))
    for p, text in got.texts.items():
        pages[p - 1] = text.split("\n")
    return set(got.texts)


def _scanned_pages(reader, pages: list[list[str]], text_layer: bool) -> list[int]:
    """Pages (1-based) to read by OCR: little or no text, and a scanned image (see the module doc)."""
    few = [i for i, lines in enumerate(pages) if ocr_mod.letters("".join(lines)) < SCANNED_MAX_CHARS]
    if not few:
        return []
    no_text_layer = not text_layer
    out = []
    for i in few:
        page = reader.pages[i]
        try:
            box = page.mediabox
            pw, ph = float(box.width), float(box.height)
            sizes = _image_sizes(page.get("/Resources"), 2)
        except Exception:  # an unreadable page: not a scan we could read either
            continue
        if any(_page_sized(w, h, pw, ph) for w, h in sizes) or no_text_layer and any(
                min(w, h) >= _ANY_MIN_SIDE for w, h in sizes):
            out.append(i + 1)
        elif no_text_layer and _has_inline_image(page):
            out.append(i + 1)
    return out


def _page_sized(w: float, h: float, pw: float, ph: float) -> bool:
    if min(w, h) < _SCAN_MIN_SIDE or min(pw, ph) <= 0:
        return False
    ratio, page_ratio = w / h, pw / ph
    return any(abs(ratio / r - 1) <= 0.2 for r in (page_ratio, 1 / page_ratio))  # also a page scanned sideways


def _image_sizes(resources, depth: int) -> list[tuple[float, float]]:
    """(width, height) in pixels of the images a page's resources hold (forms opened ``depth`` deep)."""
    out: list[tuple[float, float]] = []
    if resources is None:
        return out
    xobjects = resources.get_object().get("/XObject")
    if xobjects is None:
        return out
    for ref in xobjects.get_object().values():
        obj = ref.get_object()
        kind = obj.get("/Subtype")
        if kind == "/Image":
            out.append((float(obj.get("/Width", 0) or 0), float(obj.get("/Height", 0) or 0)))
        elif kind == "/Form" and depth > 0:
            out.extend(_image_sizes(obj.get("/Resources"), depth - 1))
    return out


def _has_inline_image(page) -> bool:
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
        return b"BI" in data and b"ID" in data
    except Exception:
        return False


def _open(path: Path, data: bytes):
    """(reader, number of pages), or a LoaderError saying why not."""
    try:
        import pypdf
        from pypdf.errors import FileNotDecryptedError
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LoaderError(path, f"pypdf is not installed: {exc}") from None
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
        _check_pages(path, reader)
        n = len(reader.pages)
    except LoaderError:
        raise
    except FileNotDecryptedError:
        raise EncryptedFile(path) from None
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise CorruptFile(path, f"{type(exc).__name__}: {exc}"[:200]) from None
    if n == 0:
        raise CorruptFile(path, "no pages")
    return reader, n


def _check_pages(path: Path, reader) -> None:
    """A PDF over ``LRC_MAX_PAGES`` is refused, by the count its page tree declares before the tree is
    walked (a hostile file can declare millions of pages), then by the pages found."""
    from rag.config import settings

    cap = settings().max_pages
    if cap <= 0:
        return
    try:
        declared = int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except Exception:  # no readable count: the walk below tells
        declared = 0
    n = declared if declared > cap else len(reader.pages)
    if n > cap:
        raise TooManyPages(path, f"{n} pages > LRC_MAX_PAGES={cap}; split it or raise LRC_MAX_PAGES")


def page_blocks(kept: list[str], page_no: int | None, outline: set[str]) -> list[Block]:
    """Headings and paragraphs of one page's lines (running headers/footers already taken out)."""
    blocks: list[Block] = []
    buf: list[str] = []
    buf_start = 0
    pos = 0
    skip = layout.contents_runs(kept)
    for j, ln in enumerate(kept):
        line_start = pos
        pos += len(ln) + 1
        if j in skip:
            continue
        level = layout.heading_level(ln, outline)
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
    return blocks


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
                    titles.add(layout.norm_key(t))

    try:
        walk(reader.outline)
    except Exception:
        pass
    return titles


def _title(reader) -> str:
    try:
        meta = reader.metadata
        return (str(meta.title or "") if meta else "").strip()
    except Exception:
        return ""
