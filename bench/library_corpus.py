"""The corpus of `rag bench library` (not a benchmark itself): N distinct files made from real documents.

- ``make_corpus(out, n)``: text files, each a window of paragraphs of one python-docs file under a heading
  naming its variant number (so no two files are byte-identical and their texts differ), and a share of PDFs,
  each a run of 1-3 pages of one shared PDF written by pypdf with its variant number as its title (distinct
  bytes; a page run repeats once a PDF's runs are used up). Files go into ``parts`` sub-folders (one job each).
- ``big_pdf(out, pages)``: the shared PDFs' pages concatenated (repeated) to ``pages`` pages.
The shared datasets are read in place; everything is written under ``out``.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

PDF_SHARE = 0.05  # of the files: PDFs (the rest text)


def _paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def make_corpus(out: Path, n: int, datasets: Path, parts: int = 16, seed: int = 0,
                pdf_share: float = PDF_SHARE) -> list[Path]:
    """``n`` distinct files under ``out``/partNN (NN < ``parts``); returns them in the order made."""
    from pypdf import PdfReader, PdfWriter

    rng = random.Random(seed)
    docs = sorted((datasets / "python-docs").rglob("*.rst.txt"))
    paras = [(d.name, ps) for d, ps in ((d, _paragraphs(d)) for d in docs) if len(ps) >= 3]
    pdfs = sorted((datasets / "pdfs").glob("*.pdf"))
    readers: dict[Path, PdfReader] = {}
    n_pdf = round(n * pdf_share) if pdfs else 0
    folders = [out / f"part{i:02d}" for i in range(parts)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for i in range(n):
        folder = folders[i % parts]
        if i < n_pdf:
            src = pdfs[i % len(pdfs)]
            reader = readers.setdefault(src, PdfReader(src))
            length = 1 + (i // len(pdfs)) % 3
            start = (i // len(pdfs) * 3) % max(1, len(reader.pages) - length)
            writer = PdfWriter()
            for page in reader.pages[start:start + length]:
                writer.add_page(page)
            writer.add_metadata({"/Title": f"{src.stem} pages {start + 1}-{start + length} (variant {i})"})
            path = folder / f"{src.stem}-v{i:05d}.pdf"
            with open(path, "wb") as fh:
                writer.write(fh)
        else:
            name, ps = paras[i % len(paras)]
            length = rng.randint(3, 8)
            start = rng.randrange(0, max(1, len(ps) - length))
            head = f"{name}, variant {i}: paragraphs {start + 1}-{start + length} of {len(ps)}"
            path = folder / f"doc-v{i:05d}.txt"
            path.write_text(head + "\n\n" + "\n\n".join(ps[start:start + length]) + "\n", encoding="utf-8")
        made.append(path)
    return made


def big_pdf(out: Path, pages: int, datasets: Path) -> Path:
    """One PDF of ``pages`` pages: the shared PDFs' pages in turn (repeated when they run out)."""
    from pypdf import PdfReader, PdfWriter

    readers = [PdfReader(p) for p in sorted((datasets / "pdfs").glob("*.pdf"))]
    writer = PdfWriter()
    done = 0
    while done < pages:
        for r in readers:
            for page in r.pages[: pages - done]:
                writer.add_page(page)
            done = len(writer.pages)
            if done >= pages:
                break
    path = out / f"big-{pages}-pages.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def copies(files: list[Path], out: Path, n: int) -> list[Path]:
    """``n`` copies of ``files`` (in turn) under other paths in ``out``: the same content at another path,
    which the ingester copies from the stored file (``rag.ingest.reuse``), never embeds."""
    import shutil

    made = []
    for j in range(n):
        src = files[j % len(files)]
        dst = out / f"copy{j // 1000:03d}" / f"c{j:06d}-{src.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        made.append(dst)
    return made
