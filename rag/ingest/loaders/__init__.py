"""File -> ``Document``: structured text blocks (headings and paragraphs) with page numbers.

The type is decided by content and extension together (browsers send ``.md`` with a useless MIME
type, so MIME is never consulted): a file starting with ``%PDF-`` is a PDF whatever its name; a
``.pdf`` that does not is corrupt; a ``.docx`` (a zip package) is read by ``docx``; text types are
decoded (``text.decode_text``). Every bad file raises a ``LoaderError`` subclass (``errors``) whose
message names the file and the reason, so a batch can report it and go on. One module per format: ``text``, ``markdown``, ``rst``, ``html``,
``pdf`` (with ``pdf_text`` and ``pdf_layout``), ``docx``, ``odt``, ``pptx`` (slides as pages), ``image``;
``tables`` turns table rows into passages; ``ocr`` reads scanned PDF pages and images with Tesseract
(``load(ocr=, progress=)``: its options and the per-page progress callback). Which extension goes to which
loader comes from the one table of formats (``formats.FORMATS``).
"""
from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders import formats
from rag.ingest.loaders.base import Block, Document, first_heading
from rag.ingest.loaders.docx import load_docx
from rag.ingest.loaders.errors import (BinaryFile, CompressionLimit, CorruptFile, CpuLimit, EmptyFile, EncryptedFile,
                                       FileTooLarge, LoaderError, MemoryLimit, NoTextLayer, TooManyPages, TooManyPixels,
                                       UndecodableText, UnpackLimit, UnsupportedType, too_large)
from rag.ingest.loaders.html import html_blocks
from rag.ingest.loaders.image import IMAGE_EXTS, is_image, load_image
from rag.ingest.loaders.markdown import markdown_blocks
from rag.ingest.loaders.odt import load_odt
from rag.ingest.loaders.ocr import NoTextFound, OcrOptions, OcrUnavailable, Progress
from rag.ingest.loaders.pdf import load_pdf
from rag.ingest.loaders.pptx import load_pptx
from rag.ingest.loaders.pdf_layout import is_contents_page, is_reference_line
from rag.ingest.loaders.rst import rst_blocks
from rag.ingest.loaders.text import decode_text, plain_blocks

__all__ = ["Block", "Document", "load", "kind_for", "is_supported", "decode_text", "is_contents_page",
           "is_reference_line", "too_large", "SUPPORTED_EXTS", "TEXT_EXTS", "BINARY_EXTS", "LoaderError", "BinaryFile", "CorruptFile",
           "EmptyFile", "EncryptedFile", "FileTooLarge", "NoTextLayer", "UndecodableText", "UnsupportedType", "NoTextFound",
           "OcrOptions", "OcrUnavailable", "IMAGE_EXTS", "UnpackLimit", "CompressionLimit", "TooManyPages",
           "TooManyPixels", "MemoryLimit", "CpuLimit", "formats"]

# extension -> loader kind, from the one table of formats (formats.FORMATS)
TEXT_EXTS = formats.kinds(binary=False)
BINARY_EXTS = formats.kinds(binary=True)  # read as bytes by their own loader, never decoded as text
SUPPORTED_EXTS = set(TEXT_EXTS) | set(BINARY_EXTS)
_HTML_START = re.compile(rb"\s*(<!doctype html|<html)", re.I)


def kind_for(path: Path, head: bytes = b"") -> str | None:
    """The loader kind by content and extension; None when unsupported."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    suffixes = [s.lower() for s in path.suffixes]
    ext = suffixes[-1] if suffixes else ""
    if ext in BINARY_EXTS:
        return BINARY_EXTS[ext]
    if ext in (".txt", ".text") and len(suffixes) >= 2 and suffixes[-2] in TEXT_EXTS:
        return TEXT_EXTS[suffixes[-2]]  # "intro.rst.txt" is reStructuredText
    kind = TEXT_EXTS.get(ext)
    if kind in ("text", "markdown") and _HTML_START.match(head[:200]):
        return "html"
    return kind


def is_supported(path: Path) -> bool:
    return kind_for(path) is not None


def load(path: str | Path, max_file_mb: float | None = 50.0, data: bytes | None = None,
         ocr: OcrOptions | None = None, progress: Progress | None = None) -> Document:
    """Read one file into a Document or raise a LoaderError. ``ocr``: how scanned pages and images are
    read (default: from the settings); ``progress(page, step, steps)``: called before each OCR page."""
    path = Path(path)
    try:
        if data is None:
            if err := too_large(path, path.stat().st_size, max_file_mb):
                raise err
            data = path.read_bytes()
    except LoaderError:
        raise
    except FileNotFoundError:
        raise LoaderError(path, "file not found") from None
    except OSError as exc:
        raise LoaderError(path, exc.strerror or str(exc)) from None
    if err := too_large(path, len(data), max_file_mb):
        raise err
    kind = kind_for(path, data[:1024])
    if kind is None:
        raise UnsupportedType(path, f"extension '{path.suffix or '(none)'}'")
    if not data.strip():
        raise EmptyFile(path)
    if kind == "pdf":
        if not data.startswith(b"%PDF-") and not data[:1024].lstrip().startswith(b"%PDF-"):
            raise CorruptFile(path, "no PDF header")
        return load_pdf(path, data, ocr, progress)
    if kind == "docx":
        return load_docx(path, data)
    if kind == "odt":
        return load_odt(path, data)
    if kind == "pptx":
        return load_pptx(path, data)
    if kind == "image":
        if not is_image(data[:16]):
            raise CorruptFile(path, f"not a {path.suffix.lower().lstrip('.').upper()} image")
        return load_image(path, data, ocr, progress)
    text = decode_text(path, data)
    if not text.strip():
        raise EmptyFile(path)
    blocks, title = _text_blocks(kind, text)
    if not blocks:
        raise EmptyFile(path)
    return Document(str(path), kind, blocks, title=title or first_heading(blocks) or path.stem)


def _text_blocks(kind: str, text: str) -> tuple[list[Block], str]:
    """(blocks, title from the markup or "") of a decoded text file."""
    if kind == "html":
        return html_blocks(text)
    if kind == "markdown":
        return markdown_blocks(text), ""
    if kind == "rst":
        return rst_blocks(text), ""
    return plain_blocks(text), ""
