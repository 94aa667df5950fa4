"""PDF: text per page (pypdf), running headers/footers removed, headings found from the PDF outline
(or numbered heading lines when there is none), and contents/index pages left out (see
``pdf_layout``). Block offsets are character offsets in the page text."""
from __future__ import annotations

import io
import logging
from pathlib import Path

from rag.ingest.loaders import pdf_layout as layout
from rag.ingest.loaders import pypdf_patch
from rag.ingest.loaders.base import Block, Document
from rag.ingest.loaders.errors import CorruptFile, EmptyFile, EncryptedFile, LoaderError, NoTextLayer


def load_pdf(path: Path, data: bytes) -> Document:
    with pypdf_patch.fonts_parsed_once():
        reader, n = _open(path, data)
        pages, warnings = _page_lines(reader)
        if not any(ln.strip() for lines in pages for ln in lines):
            raise NoTextLayer(path, f"{n} page(s), no extractable text")
        outline = _outline_titles(reader)
        drop = layout.running_lines(pages, outline)
        contents = [i + 1 for i, lines in enumerate(pages) if layout.is_contents_page(lines)]
        if len(contents) == n:  # a document that is all lists: index it anyway
            contents = []
        blocks: list[Block] = []
        for p, lines in enumerate(pages):
            if p + 1 not in contents:
                blocks.extend(_page_blocks([ln for i, ln in enumerate(lines) if i not in drop[p]], p + 1, outline))
        if not any(b.kind == "text" for b in blocks):
            raise EmptyFile(path, "only contents/index pages")
        return Document(str(path), "pdf", blocks, title=_title(reader) or path.stem, pages=n,
                        contents_pages=contents, warnings=warnings)


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


def _page_lines(reader) -> tuple[list[list[str]], list[str]]:
    """Each page's text lines, and a warning per page whose text could not be extracted."""
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
    return pages, warnings


def _page_blocks(kept: list[str], page_no: int, outline: set[str]) -> list[Block]:
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
