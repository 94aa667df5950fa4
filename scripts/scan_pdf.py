#!/usr/bin/env python3
"""Write an image-only copy of a PDF's pages, as a scanner makes it: no text layer, one grey JPEG per page.

    python scripts/scan_pdf.py SRC.pdf OUT.pdf [--pages 7-30] [--dpi 300] [--quality 75]

For trying OCR (the chat reads such a PDF with Tesseract) and for the OCR tests and benchmark
(tests/retrieval/test_ocr.py, bench/bench_ocr.py). Each page is rendered by poppler's ``pdftoppm``
(``make ocr`` installs it) and the images are put together by Pillow (a dependency of python-pptx),
each at the size of the original page.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path


def parse_pages(spec: str) -> list[int]:
    """ "7-9,12" -> [7, 8, 9, 12] (1-based)."""
    pages: list[int] = []
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        pages.extend(range(int(a), int(b or a) + 1))
    return pages


def page_count(src: Path) -> int:
    import pypdf

    return len(pypdf.PdfReader(str(src)).pages)


def scan(src: Path, out: Path, pages: list[int] | None = None, dpi: int = 300, quality: int = 75) -> Path:
    """An image-only PDF of ``pages`` (1-based; all by default) of ``src``, written to ``out``."""
    from PIL import Image

    pages = pages or list(range(1, page_count(src) + 1))
    images = []
    with tempfile.TemporaryDirectory(prefix="scan-") as tmp:
        for p in pages:
            root = Path(tmp) / f"p{p}"
            subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-singlefile", "-f", str(p), "-l", str(p),
                            str(src), str(root)], check=True)  # a grey PGM: fast to write and to read
            with Image.open(f"{root}.pgm") as im:
                grey = im.convert("L")
            buf = io.BytesIO()
            grey.save(buf, "JPEG", quality=quality)  # what scanners store; Pillow then embeds it as it is
            images.append(Image.open(io.BytesIO(buf.getvalue())))
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=float(dpi))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--pages", help="e.g. 7-30 or 1,3,5 (default: all)")
    ap.add_argument("--dpi", type=int, default=300)
    ap.add_argument("--quality", type=int, default=75, help="JPEG quality")
    a = ap.parse_args()
    scan(a.src, a.out, parse_pages(a.pages) if a.pages else None, a.dpi, a.quality)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
