"""OCR: the text of scanned pages, read by Tesseract. Used by ``pdf`` (pages without a text layer)
and ``image`` (.png, .jpg, .tif). Runs where the loaders run: in the loader processes (``rag.ingest.worker``).

Binding: the ``tesseract`` command (Debian ``tesseract-ocr`` 5.3, ``make ocr``) called directly with
``subprocess``, one call per page, the page piped in as an uncompressed grey image (PGM) and its text
read from stdout. Not pytesseract: it only wraps the same command with temporary files and would add
a dependency; not tesserocr: it must be compiled against the system's libtesseract. A PDF page is
rendered by poppler's ``pdftoppm`` (``poppler-utils``, installed with tesseract by ``make ocr``):
300 dpi grey PGM takes ~0.06 s a page, where PNG encoding alone took ~1 s; a separate process also
keeps a damaged PDF from crashing the loader. Tesseract runs with ``OMP_THREAD_LIMIT=1`` (its OpenMP
threads made a page 4x slower on 2 cores: 7.3 s vs 1.8 s) and ``OcrOptions.jobs`` pages are read at
once instead (the loader pool gives each loader process its share of the cores).

A file reads at most ``OcrOptions.max_pages`` scanned pages (``LRC_OCR_MAX_PAGES``); the others are
left out and ``OcrPages.warnings`` says so. A page image holds at most ``OcrOptions.max_pixels``
(``LRC_OCR_MAX_PIXELS``): a PDF page larger than that at 300 dpi is rendered at a lower resolution (or left
out below ``MIN_DPI``), with a warning; an image over it is refused from its header (``image``). A missing command (or language data) is an
``OcrUnavailable`` error: the file fails with the install command and is read once OCR is installed
(it was never recorded as indexed). ``progress(page, step, steps)`` is called before each page is
waited for, in order: "OCR page step/steps".
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.ingest.loaders.errors import LoaderError

Progress = Callable[[int, int, int], None]  # (page number, step, steps): "OCR page step/steps"
PAGE_TIMEOUT_S = 600  # a hung command, not a slow page (the loader may be paused while the model computes)
MIN_DPI = 70  # a page rendered coarser is not worth reading (Tesseract needs ~10 px letters)
MIN_TEXT_CHARS = 4  # OCR output with fewer letters/digits is no text (noise, a blank scan)
INSTALL_HINT = "install it with `make ocr` (or `apt-get install tesseract-ocr poppler-utils`)"
_ALNUM = re.compile(r"[^\W_]", re.U)


class OcrUnavailable(LoaderError):
    reason = "this file needs OCR, which is not available"


class NoTextFound(LoaderError):
    reason = "no text found by OCR (a blank or unreadable scan?)"


@dataclass(frozen=True)
class OcrOptions:
    """How OCR runs (plain data: it crosses the pipe to a loader process in ``LoaderConfig``)."""

    max_pages: int = 50  # scanned pages read per file (LRC_OCR_MAX_PAGES; 0: OCR off)
    lang: str = "eng"  # tesseract language(s), e.g. "eng+deu" (LRC_OCR_LANG)
    tesseract: str = "tesseract"  # command or path (LRC_TESSERACT)
    pdftoppm: str = "pdftoppm"
    dpi: int = 300  # PDF pages are rendered at this resolution
    jobs: int = 1  # pages read at once (tesseract processes)
    max_pixels: int = 40_000_000  # pixels of one page image (LRC_OCR_MAX_PIXELS; 0: no cap)

    @classmethod
    def from_settings(cls, jobs: int = 1) -> "OcrOptions":
        from rag.config import settings

        s = settings()
        return cls(max_pages=max(0, s.ocr_max_pages), lang=s.ocr_lang or "eng", tesseract=s.tesseract or "tesseract",
                   jobs=max(1, jobs), max_pixels=max(0, s.ocr_max_pixels))

    def too_many_pixels(self, width: int, height: int) -> bool:
        return 0 < self.max_pixels < width * height

    def render_dpi(self, width_pt: float, height_pt: float) -> int | None:
        """The resolution a PDF page of this size (points) is rendered at: ``dpi``, or lower when that makes
        more than ``max_pixels``; None when even ``MIN_DPI`` does."""
        pixels = (width_pt * self.dpi / 72) * (height_pt * self.dpi / 72)
        if not 0 < self.max_pixels < pixels:
            return self.dpi
        dpi = int(self.dpi * math.sqrt(self.max_pixels / pixels))
        return dpi if dpi >= MIN_DPI else None


@dataclass
class OcrPages:
    """What OCR read: page number -> text (pages where it found text), the pages it read, warnings."""

    texts: dict[int, str] = field(default_factory=dict)
    read: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def letters(text: str) -> int:
    """How many letters and digits ``text`` holds (what says whether a page has text)."""
    return len(_ALNUM.findall(text))


def limited(pages: list[int], options: OcrOptions) -> tuple[list[int], list[str]]:
    """The pages within the limit, and the warning when some are left out."""
    if len(pages) <= options.max_pages:
        return pages, []
    return pages[:options.max_pages], [f"OCR stopped at {options.max_pages} of {len(pages)} scanned pages; "
                                       f"set LRC_OCR_MAX_PAGES to read more"]


def _command(path: Path, name: str, what: str) -> str:
    found = shutil.which(name)
    if not found:
        raise OcrUnavailable(path, f"{what} `{name}` was not found; {INSTALL_HINT}")
    return found


class _Reader:
    """One file's page reader: checks the commands once, then reads page images (bytes) to text."""

    def __init__(self, path: Path, options: OcrOptions):
        self.path = path
        self.options = options
        self.tesseract = _command(path, options.tesseract, "Tesseract")
        self.env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def text(self, image: bytes, dpi: int | None) -> str:
        """The text of one page image; OcrUnavailable when tesseract cannot run at all."""
        cmd = [self.tesseract, "stdin", "stdout", "-l", self.options.lang, "--psm", "3"]
        if dpi:
            cmd += ["--dpi", str(dpi)]
        try:
            done = subprocess.run(cmd, input=image, capture_output=True, timeout=PAGE_TIMEOUT_S, env=self.env)
        except OSError as exc:
            raise OcrUnavailable(self.path, f"Tesseract could not be started ({exc.strerror or exc}); {INSTALL_HINT}")
        err = done.stderr.decode("utf-8", "replace")
        if "Failed loading language" in err or "Could not initialize tesseract" in err:
            lang = self.options.lang.split("+")[0]
            raise OcrUnavailable(self.path, f"Tesseract has no '{self.options.lang}' language data; install it "
                                            f"with `apt-get install tesseract-ocr-{lang}` (or set LRC_OCR_LANG)")
        if done.returncode != 0:
            last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), f"exit code {done.returncode}")
            raise RuntimeError(f"Tesseract failed: {last.strip()[:160]}")
        return done.stdout.decode("utf-8", "replace").replace("\f", "\n").strip()


def read_images(path: Path, images: list[Callable[[], tuple[bytes, int | None]]], pages: list[int],
                options: OcrOptions, progress: Progress | None = None) -> OcrPages:
    """OCR of ``pages`` (page numbers) whose images ``images[i]()`` gives as (PGM/PNG bytes, dpi or
    None), ``options.jobs`` at a time. A page that fails is a warning; OcrUnavailable stops the file."""
    if not pages:
        return OcrPages()
    return _read(_Reader(path, options), images, pages, progress)


def _read(reader: _Reader, images: list[Callable[[], tuple[bytes, int | None]]], pages: list[int],
          progress: Progress | None) -> OcrPages:
    out = OcrPages()

    def one(i: int) -> str:
        image, dpi = images[i]()
        return reader.text(image, dpi)

    with ThreadPoolExecutor(max_workers=max(1, reader.options.jobs), thread_name_prefix="rag-ocr") as pool:
        futures = [pool.submit(one, i) for i in range(len(pages))]
        try:
            for step, (page, fut) in enumerate(zip(pages, futures), start=1):
                if progress:
                    progress(page, step, len(pages))
                try:
                    text = fut.result()
                except LoaderError:
                    raise
                except Exception as exc:
                    out.warnings.append(f"page {page}: not read by OCR ({exc})"[:240])
                    continue
                out.read.append(page)
                if letters(text) >= MIN_TEXT_CHARS:
                    out.texts[page] = text
        finally:
            for fut in futures:
                fut.cancel()
    return out


def fitted(pages: list[int], sizes: dict[int, tuple[float, float]],
           options: OcrOptions) -> tuple[list[int], dict[int, int], list[str]]:
    """The pages to render, each one's resolution, and warnings: a page (``sizes``: its width and height in
    points) larger than ``options.max_pixels`` at ``options.dpi`` is rendered at a lower resolution, or left
    out when even ``MIN_DPI`` is too many pixels."""
    todo, dpis, warnings = [], {}, []
    for page in pages:
        w, h = sizes.get(page, (0.0, 0.0))
        dpi = options.render_dpi(w, h)
        cap = f"LRC_OCR_MAX_PIXELS={options.max_pixels}"
        if dpi is None:
            warnings.append(f"page {page}: not read by OCR: {w:.0f} x {h:.0f} pt is more than {cap} "
                            f"even at {MIN_DPI} dpi")
            continue
        if dpi != options.dpi:
            warnings.append(f"page {page}: read by OCR at {dpi} dpi instead of {options.dpi} ({cap})")
        todo.append(page)
        dpis[page] = dpi
    return todo, dpis, warnings


def read_pdf_pages(path: Path, data: bytes, pages: list[int], options: OcrOptions,
                   progress: Progress | None = None, sizes: dict[int, tuple[float, float]] | None = None) -> OcrPages:
    """OCR of a PDF's ``pages`` (1-based), each rendered by pdftoppm at ``options.dpi`` (lower for a page
    that would be more than ``options.max_pixels``; ``sizes``: the pages' width and height in points)."""
    if not pages:
        return OcrPages()
    pages, dpis, warnings = fitted(pages, sizes or {}, options)
    if not pages:
        return OcrPages(warnings=warnings)
    pdftoppm = _command(path, options.pdftoppm, "pdftoppm (poppler-utils)")
    reader = _Reader(path, options)  # tesseract checked before the PDF is written out
    with tempfile.TemporaryDirectory(prefix="rag-ocr-") as tmp:
        pdf = Path(tmp) / "file.pdf"  # the bytes that were hashed, whatever happens to the file meanwhile
        pdf.write_bytes(data)

        def render(page: int) -> Callable[[], tuple[bytes, int | None]]:
            def run() -> tuple[bytes, int | None]:
                cmd = [pdftoppm, "-r", str(dpis[page]), "-gray", "-f", str(page), "-l", str(page), str(pdf)]
                done = subprocess.run(cmd, capture_output=True, timeout=PAGE_TIMEOUT_S)
                if done.returncode != 0 or not done.stdout:
                    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
                    raise RuntimeError(f"the page could not be rendered: {err[-1][:160] if err else done.returncode}")
                return done.stdout, dpis[page]
            return run

        got = _read(reader, [render(p) for p in pages], pages, progress)
    got.warnings[:0] = warnings
    return got
