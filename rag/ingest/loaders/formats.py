"""The one table of supported file formats: extension, MIME types, loader, description.

Everything that names the formats is built from ``FORMATS`` (or checked against it by a test): the
loaders' dispatch (``rag.ingest.loaders``: TEXT_EXTS, BINARY_EXTS, SUPPORTED_EXTS), the reason an
unsupported file gives (``errors.UnsupportedType``), ``rag index --help``, the chat's welcome text, the
upload accept list in ``.chainlit/config.toml`` (Chainlit reads it from there; tests/test_one_source.py
holds it equal to ``upload_accept()``) and the README's table (``readme_table()``, checked there too).
A new format is one row here and its loader. Imports nothing else from the package (``errors`` uses it).
"""
from __future__ import annotations

from dataclasses import dataclass

UNTYPED = "application/octet-stream"  # what browsers send for .md/.rst, and for Office files on machines without their MIME entry


@dataclass(frozen=True)
class Format:
    kind: str  # the loader (rag.ingest.loaders.load dispatches on it)
    name: str  # what the user reads: "Word"
    exts: tuple[str, ...]  # the first one is the one shown in short lists
    mimes: tuple[str, ...]  # the upload accept list: browsers reject an explicit "*/*"
    binary: bool  # read as bytes by its own loader, never decoded as text
    about: str = ""  # the README's description

    @property
    def ocr(self) -> bool:
        return self.kind == "image"


_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
FORMATS: tuple[Format, ...] = (
    Format("pdf", "PDF", (".pdf",), ("application/pdf",), True,
           "its text layer; pages without one that show a scan are read by OCR"),
    Format("docx", "Word", (".docx",), (_DOCX, UNTYPED), True,
           "headings (Title, Heading 1-9), paragraphs and tables"),
    Format("odt", "OpenDocument text", (".odt",), ("application/vnd.oasis.opendocument.text", UNTYPED), True,
           "headings, paragraphs and tables"),
    Format("pptx", "PowerPoint", (".pptx",), (_PPTX, UNTYPED), True,
           "each slide is cited as a page; its title, text, tables and notes"),
    Format("markdown", "Markdown", (".md", ".markdown"), ("text/markdown", "text/x-markdown", "text/plain", UNTYPED),
           False, "headings and tables"),
    Format("text", "text", (".txt", ".text"), ("text/plain", UNTYPED), False,
           "paragraphs separated by blank lines; underlined titles as headings"),
    Format("rst", "reStructuredText", (".rst",), ("text/x-rst", "text/prs.fallenstein.rst", "text/plain", UNTYPED),
           False, "headings and code blocks"),
    Format("html", "HTML", (".html", ".htm", ".xhtml"), ("text/html", "application/xhtml+xml"), False,
           "headings, tables and code blocks; scripts and styles left out"),
    Format("image", "PNG image", (".png",), ("image/png",), True, "read by OCR"),
    Format("image", "JPEG image", (".jpg", ".jpeg"), ("image/jpeg",), True, "read by OCR"),
    Format("image", "TIFF image", (".tif", ".tiff"), ("image/tiff",), True, "read by OCR; each frame is a page"),
)


def kinds(binary: bool | None = None) -> dict[str, str]:
    """Extension -> loader kind (only the binary or only the text formats when ``binary`` says)."""
    return {ext: f.kind for f in FORMATS if binary is None or f.binary == binary for ext in f.exts}


def exts_of(kind: str) -> tuple[str, ...]:
    return tuple(ext for f in FORMATS if f.kind == kind for ext in f.exts)


def upload_accept() -> dict[str, list[str]]:
    """MIME type -> extensions: Chainlit's ``[features.spontaneous_file_upload] accept``."""
    accept: dict[str, list[str]] = {}
    for f in FORMATS:
        for mime in f.mimes:
            accept.setdefault(mime, []).extend(e for e in f.exts if e not in accept[mime])
    return accept


def short_list() -> str:
    """".pdf, .docx, ..., images .png .jpg .tif": the formats' first extensions (an error's reason)."""
    docs = ", ".join(f.exts[0] for f in FORMATS if not f.ocr)
    return f"{docs}, images {' '.join(f.exts[0] for f in FORMATS if f.ocr)}"


def spoken_list() -> str:
    """"PDF, Word (.docx), ..., or HTML files, or scans and images (.png, .jpg, .tif; read by OCR)"."""
    names = [f"{f.name} ({f.exts[0]})" if f.binary and f.kind != "pdf" else f.name for f in FORMATS if not f.ocr]
    images = ", ".join(f.exts[0] for f in FORMATS if f.ocr)
    return f"{', '.join(names[:-1])} or {names[-1]} files, or scans and images ({images}; read by OCR)"


def readme_table() -> str:
    """The README's table of formats (tests/test_one_source.py holds the README's copy equal to it)."""
    rows = ["| format | extensions | how it is read |", "|---|---|---|"]
    rows += [f"| {f.name} | {' '.join(f'`{e}`' for e in f.exts)} | {f.about} |" for f in FORMATS]
    return "\n".join(rows)


def accept_toml() -> str:
    """The ``accept = {...}`` line of ``.chainlit/config.toml`` (Chainlit reads the upload list from there)."""
    def strings(items) -> str:
        return ", ".join(f'"{x}"' for x in items)

    return "    accept = { " + ", ".join(f'"{m}" = [{strings(e)}]' for m, e in upload_accept().items()) + " }"
