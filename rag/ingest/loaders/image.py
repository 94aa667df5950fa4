"""Images (.png, .jpg/.jpeg, .tif/.tiff): their text, read by OCR (``ocr``). Each frame is a page (a
multi-page TIFF has several, cited by number; a single image cites none; ``LRC_OCR_MAX_PAGES`` applies). Pillow decodes the image (a damaged one
is a ``CorruptFile``), lays a transparent one on white, and hands each frame to Tesseract as a grey
PGM with the image's own resolution when it records one. An image (or a TIFF frame) over
``LRC_OCR_MAX_PIXELS`` is refused (a frame: left out with a warning) from its header, before it is decoded. The page's lines then become Blocks as a PDF
page's do (numbered headings, running headers of a multi-page scan), all marked ``ocr``."""
from __future__ import annotations

import io
import re
import threading
import warnings
from pathlib import Path

from rag.ingest.loaders import formats, ocr as ocr_mod
from rag.ingest.loaders import pdf_layout as layout
from rag.ingest.loaders.base import Block, Document, first_heading
from rag.ingest.loaders.errors import CorruptFile, LoaderError, TooManyPixels
from rag.ingest.loaders.pdf import page_blocks

IMAGE_EXTS = formats.exts_of("image")  # the one table of formats
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")


def is_image(head: bytes) -> bool:
    return head.startswith(_MAGIC)


def load_image(path: Path, data: bytes, ocr: ocr_mod.OcrOptions | None = None,
               progress: ocr_mod.Progress | None = None) -> Document:
    options = ocr or ocr_mod.OcrOptions.from_settings()
    if options.max_pages <= 0:
        raise ocr_mod.OcrUnavailable(path, "OCR is off (LRC_OCR_MAX_PAGES=0)")
    image = _open(path, data, options)
    frames = max(1, int(getattr(image, "n_frames", 1) or 1))
    todo, warnings = ocr_mod.limited(list(range(1, frames + 1)), options)
    lock = threading.Lock()  # one frame decoded at a time (a Pillow image is not thread-safe); OCR runs in parallel

    def frame(page: int):
        def run() -> tuple[bytes, int | None]:
            with lock:
                image.seek(page - 1)  # the frame's header: its size is known before it is decoded
                if options.too_many_pixels(*image.size):
                    raise RuntimeError(_pixels(image.size, options))
                return _pgm(image), _dpi(image)
        return run

    got = ocr_mod.read_images(path, [frame(p) for p in todo], todo, options, progress)
    warnings += got.warnings
    if not got.texts:
        raise ocr_mod.NoTextFound(path, f"{len(got.read)} page(s) read" if frames > 1 else "")
    pages = [got.texts.get(p, "").split("\n") for p in range(1, frames + 1)]
    drop = layout.running_lines(pages)
    blocks: list[Block] = []
    for p in sorted(got.texts):
        page = p if frames > 1 else None  # a single image cites no page
        for b in page_blocks([ln for i, ln in enumerate(pages[p - 1]) if i not in drop[p - 1]], page, set()):
            b.ocr = True
            blocks.append(b)
    if not any(b.kind == "text" for b in blocks):
        raise ocr_mod.NoTextFound(path, "only headings")
    return Document(str(path), "image", blocks, title=first_heading(blocks) or path.stem, pages=frames,
                    warnings=warnings, ocr_pages=sorted(got.texts))


def _pixels(size: tuple[int, int], options: ocr_mod.OcrOptions) -> str:
    w, h = size
    return f"{w} x {h} = {w * h / 1e6:.1f} million pixels > LRC_OCR_MAX_PIXELS={options.max_pixels}; scale it down"


def _open(path: Path, data: bytes, options: ocr_mod.OcrOptions):
    """The image with its first frame decoded, once its header says it is within ``options.max_pixels``
    (Pillow's own decompression-bomb guard set to the same cap: it also covers what the header check does not
    see)."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LoaderError(path, f"Pillow is not installed: {exc}") from None
    if options.max_pixels:
        Image.MAX_IMAGE_PIXELS = options.max_pixels  # Pillow refuses twice this at open, warns above it
    try:
        with warnings.catch_warnings():  # Pillow warns past its guard; the size is checked right below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
        if options.too_many_pixels(*image.size):
            raise TooManyPixels(path, _pixels(image.size, options))
        image.load()
        return image
    except TooManyPixels:
        raise
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's guard names the size, not the sides
        pixels = f"{int(found.group(1)) / 1e6:.1f} million pixels" if found else "more pixels"
        raise TooManyPixels(path, f"{pixels} > LRC_OCR_MAX_PIXELS={options.max_pixels}; scale it down") from None
    except Exception as exc:  # Pillow raises many kinds on damaged files
        raise CorruptFile(path, f"not a readable image: {type(exc).__name__}: {exc}"[:240]) from None


def _pgm(image) -> bytes:
    """The current frame as an 8-bit grey PGM (transparency laid on white)."""
    from PIL import Image

    frame = image
    if frame.mode in ("RGBA", "LA", "PA") or frame.mode == "P" and "transparency" in frame.info:
        rgba = frame.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        frame = white
    grey = frame.convert("L")
    buf = io.BytesIO()
    grey.save(buf, "PPM")
    return buf.getvalue()


def _dpi(image) -> int | None:
    dpi = image.info.get("dpi")
    try:
        x = float(dpi[0]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        return None
    return int(round(x)) if 70 <= x <= 2400 else None
