"""Hostile files fail alone (issue 24, item 6): zip bombs in .docx / .pptx / .odt, a PDF with more pages than
LRC_MAX_PAGES (or one whose page tree lies), an image whose header declares billions of pixels, a scanned page
too large to render within LRC_OCR_MAX_PIXELS, a file that makes a loader process need more memory than
LRC_LOADER_MEMORY_MB and one that takes more CPU than LRC_LOADER_CPU_SECONDS. Every file here is real and
built by the test (no mocks); each is refused with its name and reason, the test process's memory stays
bounded, and in a batch through the real Library (real loader processes, the real embedding model) the good
files are indexed and searchable."""
from __future__ import annotations

import io
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pypdf
import pytest

from rag.ingest import loaders
from rag.ingest.loaders import (CompressionLimit, CorruptFile, LoaderError, NoTextFound, TooManyPages, TooManyPixels,
                                UnpackLimit)

pytestmark = [pytest.mark.security]

REPO_ROOT = Path(__file__).resolve().parents[2]
FAQ_PDF = REPO_ROOT / "docs_corpus" / "faq.pdf"  # 3 real pages with a text layer
MB = 1 << 20
GIB = 1 << 30
WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
GOOD = {"kettle.md": "# Kettle\n\nDescale the kettle with vinegar and water, then rinse it twice.",
        "garden.md": "# Garden\n\nTomatoes need six hours of direct sunlight every day."}


# ------------------------------------------------------------------ hostile files, built for real
def deflated_repeats(head: bytes, unit: bytes, size: int, tail: bytes) -> tuple[bytes, int, int]:
    """(raw deflate stream, CRC-32, length) of ``head`` + ``unit`` repeated to ~``size`` bytes + ``tail``,
    built in seconds: each MiB of repeats is compressed once (a full flush makes the blocks independent) and
    the compressed block is repeated, as a zip bomb's author would."""
    block = unit * (MB // len(unit))
    n = max(1, size // len(block))

    def flushed(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    crc = zlib.crc32(head)
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    raw = flushed(head) + flushed(block) * n + flushed(tail) + b"\x03\x00"  # an empty final block
    return raw, crc, len(head) + len(block) * n + len(tail)


def write_zip(dest: Path, parts: dict[str, bytes], bomb: tuple[str, bytes, int, int] | None = None,
              declared: int | None = None) -> Path:
    """A zip package written byte by byte: ``parts`` deflated (``mimetype`` stored, as ODF wants), and
    ``bomb`` = (name, raw deflate, crc, size) as it is; ``declared``: the size the directory claims for the
    bomb instead of its real size (a directory that lies)."""
    entries = []
    for name, data in parts.items():
        if name == "mimetype":
            entries.append((name, 0, data, zlib.crc32(data), len(data), len(data)))
        else:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            raw = c.compress(data) + c.flush()
            entries.append((name, 8, raw, zlib.crc32(data), len(data), len(data)))
    if bomb:
        name, raw, crc, size = bomb
        entries.append((name, 8, raw, crc, size, size if declared is None else declared))
    out, central = io.BytesIO(), io.BytesIO()
    for name, method, raw, crc, size, claimed in entries:
        offset = out.tell()
        fn = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(raw), claimed, len(fn), 0))
        out.write(fn)
        out.write(raw)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(raw),
                                  claimed, len(fn), 0, 0, 0, 0, 0, offset))
        central.write(fn)
    cd = central.getvalue()
    out.write(cd)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), out.tell() - len(cd), 0))
    dest.write_bytes(out.getvalue())
    return dest


def parts_of(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def real_docx() -> dict[str, bytes]:
    import docx

    buf = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("The kettle manual says to descale it monthly.")
    d.save(buf)
    return parts_of(buf.getvalue())


def real_pptx() -> dict[str, bytes]:
    from pptx import Presentation

    buf = io.BytesIO()
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Kettles"
    slide.placeholders[1].text = "Descale the kettle monthly."
    deck.save(buf)
    return parts_of(buf.getvalue())


def real_odt() -> dict[str, bytes]:
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    text = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
    manifest = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
    return {
        "mimetype": b"application/vnd.oasis.opendocument.text",
        "META-INF/manifest.xml": (f'<manifest:manifest xmlns:manifest="{manifest}"><manifest:file-entry '
                                  'manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
                                  '</manifest:manifest>').encode(),
        "content.xml": (f'<office:document-content xmlns:office="{office}" xmlns:text="{text}"><office:body>'
                        '<office:text><text:p>Descale the kettle monthly.</text:p></office:text></office:body>'
                        '</office:document-content>').encode(),
    }


PARAGRAPH = b"<w:p><w:r><w:t>all work and no play makes a dull document</w:t></w:r></w:p>"
HEAD = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{WORD_NS}"><w:body>'.encode()
TAIL = b"</w:body></w:document>"


def docx_bomb(dest: Path, size: int = GIB, declared: int | None = None) -> Path:
    """A real .docx whose word/document.xml is ``size`` bytes of repeated paragraphs."""
    parts = real_docx()
    parts.pop("word/document.xml")
    bomb = ("word/document.xml", *deflated_repeats(HEAD, PARAGRAPH, size, TAIL))
    return write_zip(dest, parts, bomb, declared)


def pptx_bomb(dest: Path) -> Path:
    parts = real_pptx()
    parts.pop("ppt/slides/slide1.xml")
    head = b'<?xml version="1.0"?><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
    return write_zip(dest, parts, ("ppt/slides/slide1.xml", *deflated_repeats(head, b"<p:x/>" * 8, GIB, b"</p:sld>")))


def odt_bomb(dest: Path) -> Path:
    parts = real_odt()
    parts.pop("content.xml")
    head = b'<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0">'
    return write_zip(dest, parts, ("content.xml", *deflated_repeats(head, b"\0", GIB, b"</office:document-content>")))


def huge_png(dest: Path, side: int = 100_000) -> Path:
    """A 100 KB PNG whose header declares side x side pixels (10 billion: 10 GB once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idat = zlib.compress(b"\0" * (side + 1) * 100, 9)  # the first 100 rows, the rest never sent
    dest.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return dest


def lying_page_count(dest: Path, declared: int = 10**9) -> Path:
    """The FAQ PDF with a page tree that claims ``declared`` pages."""
    writer = pypdf.PdfWriter(clone_from=str(FAQ_PDF))
    writer._root_object["/Pages"].get_object()[pypdf.generic.NameObject("/Count")] = pypdf.generic.NumberObject(declared)
    with open(dest, "wb") as f:
        writer.write(f)
    return dest


def wordy_markdown(dest: Path, mb: float, seed: int = 7) -> Path:
    """Real-looking Markdown (headings, 150-word paragraphs of made-up words) of about ``mb`` MB."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnoprstuvw") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    paragraphs = [" ".join(rng.choice(words) for _ in range(150)) + "." for _ in range(400)]
    body = "\n\n".join(f"# Part {i}\n\n" + "\n\n".join(paragraphs[i % 8 * 50:(i % 8 + 1) * 50]) for i in range(8))
    repeats = max(1, int(mb * MB / len(body)))
    dest.write_text("\n\n".join(body for _ in range(repeats)), encoding="utf-8")
    return dest


def peak_mb() -> float:
    """This process's peak resident memory so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refused(path: Path, error: type[LoaderError]) -> tuple[str, float]:
    """Load ``path`` in this process, expecting ``error``: (its message, seconds taken)."""
    t0 = time.perf_counter()
    with pytest.raises(error) as info:
        loaders.load(path, max_file_mb=None)
    return str(info.value), time.perf_counter() - t0


# ------------------------------------------------------------------ each cap on its own (in this process)
def test_a_docx_zip_bomb_is_refused_before_anything_is_inflated(tmp_path):
    bomb = docx_bomb(tmp_path / "bomb.docx")
    assert bomb.stat().st_size < 4 * MB  # 1 GiB of document.xml in a file of less than 4 MB
    before = peak_mb()
    message, seconds = refused(bomb, UnpackLimit)
    assert message.startswith("bomb.docx: the package unpacks to more than the size limit"), message
    assert re.search(r"\(its parts declare 102\d\.\d MB > LRC_MAX_UNZIP_MB=300\)$", message), message
    assert seconds < 2 and peak_mb() - before < 50, (seconds, peak_mb() - before)


def test_a_docx_over_the_ratio_cap_but_under_the_size_cap(tmp_path):
    ratio_bomb = docx_bomb(tmp_path / "dense.docx", size=64 * MB)  # 64 MiB < 300, compressed ~1000 times
    message, _ = refused(ratio_bomb, CompressionLimit)
    assert message.startswith("dense.docx: the package is compressed far more than a document is"), message
    assert "word/document.xml unpacks to" in message and "LRC_MAX_UNZIP_RATIO=200" in message, message


def test_the_unzip_caps_are_settings(tmp_path, monkeypatch):
    dense = docx_bomb(tmp_path / "dense.docx", size=2 * MB)
    assert "LRC_MAX_UNZIP_RATIO=200" in refused(dense, CompressionLimit)[0]
    monkeypatch.setenv("LRC_MAX_UNZIP_RATIO", "5000")
    monkeypatch.setenv("LRC_MAX_UNZIP_MB", "1")
    assert re.search(r"declare 2\.\d MB > LRC_MAX_UNZIP_MB=1\)$", refused(dense, UnpackLimit)[0])
    monkeypatch.setenv("LRC_MAX_UNZIP_MB", "16")  # within both caps: a real (if dull) document
    doc = loaders.load(dense, max_file_mb=None)
    assert doc.kind == "docx" and "dull document" in doc.blocks[0].text


@pytest.mark.parametrize("maker,name", [(pptx_bomb, "deck.pptx"), (odt_bomb, "notes.odt")])
def test_pptx_and_odt_bombs_are_refused(tmp_path, maker, name):
    before = peak_mb()
    message, seconds = refused(maker(tmp_path / name), UnpackLimit)
    assert message.startswith(f"{name}: the package unpacks to more than the size limit"), message
    assert "LRC_MAX_UNZIP_MB=300" in message
    assert seconds < 2 and peak_mb() - before < 50, (seconds, peak_mb() - before)


def test_a_directory_that_lies_about_the_size_is_stopped_while_reading(tmp_path):
    """The directory says 4 KB; the part inflates to 1 GiB. Reading stops at the declared size (never
    past the caps) and the part fails its checksum."""
    liar = docx_bomb(tmp_path / "liar.docx", declared=4096)
    before = peak_mb()
    message, seconds = refused(liar, CorruptFile)
    assert message.startswith("liar.docx: the file is damaged") and "Bad CRC-32" in message, message
    assert seconds < 2 and peak_mb() - before < 50


def test_a_pdf_over_the_page_cap_is_refused_naming_the_count_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("LRC_MAX_PAGES", "2")
    message, _ = refused(FAQ_PDF, TooManyPages)
    assert message == "faq.pdf: the PDF has more pages than the page limit (3 pages > LRC_MAX_PAGES=2; " \
                      "split it or raise LRC_MAX_PAGES)", message
    monkeypatch.setenv("LRC_MAX_PAGES", "3")
    assert loaders.load(FAQ_PDF).pages == 3


def test_a_pdf_whose_page_tree_claims_a_billion_pages_is_refused_without_walking_it(tmp_path):
    message, seconds = refused(lying_page_count(tmp_path / "claims.pdf"), TooManyPages)
    assert "1000000000 pages > LRC_MAX_PAGES=2000" in message and seconds < 2, message


def test_an_image_declaring_ten_billion_pixels_is_refused_from_its_header(tmp_path, monkeypatch):
    png = huge_png(tmp_path / "poster.png")
    before = peak_mb()
    message, seconds = refused(png, TooManyPixels)
    assert message.startswith("poster.png: the image has more pixels than OCR reads"), message
    assert "LRC_OCR_MAX_PIXELS=40000000" in message and seconds < 2 and peak_mb() - before < 50
    monkeypatch.setenv("LRC_OCR_MAX_PIXELS", "9000000000")  # within 2x of Pillow's guard, past our own check
    message, _ = refused(png, TooManyPixels)
    assert "100000 x 100000 = 10000.0 million pixels > LRC_OCR_MAX_PIXELS=9000000000" in message, message


def test_a_scanned_page_too_large_for_the_pixel_cap_is_read_at_a_lower_resolution(tmp_path, monkeypatch):
    missing = [c for c in ("tesseract", "pdftoppm") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make ocr`", pytrace=False)
    scan = tmp_path / "faq-scan.pdf"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "scan_pdf.py"), str(FAQ_PDF), str(scan),
                    "--pages", "1", "--dpi", "200"], check=True, capture_output=True)
    monkeypatch.setenv("LRC_OCR_MAX_PIXELS", "3000000")  # a letter page at 300 dpi is 8.4 million
    doc = loaders.load(scan)
    assert any(w.startswith("page 1: read by OCR at") and "instead of 300 (LRC_OCR_MAX_PIXELS=3000000)" in w
               for w in doc.warnings), doc.warnings
    assert "Local RAG Chat" in doc.text
    monkeypatch.setenv("LRC_OCR_MAX_PIXELS", "100000")  # below even 70 dpi: left out, and said so
    message, _ = refused(scan, NoTextFound)
    assert "page 1: not read by OCR" in message and "LRC_OCR_MAX_PIXELS=100000" in message, message


# ------------------------------------------------------------------ through the real Library and loader processes
def failed_by_name(report) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in report.failed}


def assert_good_files_searchable(lib, report) -> None:
    assert sorted(Path(p).name for p in report.added) == sorted([*GOOD, "faq.pdf"]), report.summary()
    assert lib.search("descale the kettle with vinegar", k=1)[0].chunk.name == "kettle.md"
    assert lib.search("how many hours of sunlight do tomatoes need", k=1)[0].chunk.name == "garden.md"
    assert lib.search("Does Local RAG Chat send my documents to the internet?", k=1)[0].chunk.name == "faq.pdf"


def good_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in GOOD.items():
        (folder / name).write_text(text, encoding="utf-8")
    shutil.copy(FAQ_PDF, folder / "faq.pdf")
    return sorted(folder.iterdir())


@pytest.mark.slow
def test_a_batch_with_hostile_files_indexes_the_good_ones(tmp_path, monkeypatch):
    """Bombs of every kind, a PDF over the page cap, a huge image and a Markdown file that needs more memory
    than a loader may use (a 40 MB file: decoding and parsing it grows a loader by ~260 MB; chunking it
    would need ~2.4 GB), with three good files, through the real Library: each hostile file is named with
    its reason, the good ones are found, and this process never held the bombs."""
    from rag.embedder import Embedder
    from rag.library import Library

    Embedder.get()  # the model loaded before the peak is taken: what is measured is the batch
    docs = tmp_path / "docs"
    good_files(docs)
    lying_page_count(docs / "claims.pdf")
    docx_bomb(docs / "bomb.docx")
    pptx_bomb(docs / "deck.pptx")
    odt_bomb(docs / "notes.odt")
    huge_png(docs / "poster.png")
    wordy_markdown(docs / "huge.md", 40)
    monkeypatch.setenv("LRC_LOADER_MEMORY_MB", "256")
    before = peak_mb()
    lib = Library(tmp_path / "index")
    report = lib.ingest([docs])
    failed = failed_by_name(report)
    assert sorted(failed) == ["bomb.docx", "claims.pdf", "deck.pptx", "huge.md", "notes.odt", "poster.png"], failed
    for name in ("bomb.docx", "deck.pptx", "notes.odt"):
        assert failed[name].startswith(f"{name}: the package unpacks to more than the size limit"), failed[name]
    assert "1000000000 pages > LRC_MAX_PAGES=2000" in failed["claims.pdf"]
    assert "more pixels than OCR reads" in failed["poster.png"]
    assert "needs more than 256 MiB of memory to read" in failed["huge.md"], failed["huge.md"]
    assert_good_files_searchable(lib, report)
    grew = peak_mb() - before
    assert grew < 400, f"this process grew by {grew:.0f} MiB during the batch"
    assert lib.ingester.loader_processes == []  # none left behind


@pytest.mark.slow
def test_a_file_that_takes_too_much_cpu_fails_alone_and_its_loader_is_replaced(tmp_path, monkeypatch):
    """A 5 MB Markdown file of 150-word sentences costs the chunker several times 2 s of CPU; with a 2 s limit per file its
    loader process is ended by the kernel (SIGXCPU), the file is named with the limit, and a new process
    loads the others."""
    from rag.ingest import pool
    from rag.library import Library

    docs = tmp_path / "docs"
    good_files(docs)
    # first in line (the replacement loads the rest); 5 MB: a run over 2 MB always loads in processes (a small
    # run of text files is read in a thread, where no CPU limit applies); on a quiet machine 1 MB took under 2 s
    wordy_markdown(docs / "a-slow.md", 5)
    started = []
    real_start = pool.start_loader_process
    monkeypatch.setattr(pool, "start_loader_process", lambda: started.append(real_start()) or started[-1])
    monkeypatch.setenv("LRC_LOADER_CPU_SECONDS", "2")
    monkeypatch.setenv("LRC_INGEST_WORKERS", "1")  # one process: the replacement is the only way on
    lib = Library(tmp_path / "index")
    report = lib.ingest([docs])
    assert failed_by_name(report) == {"a-slow.md": "a-slow.md: took more than 2 s of CPU to read (the loader limit "
                                                 "LRC_LOADER_CPU_SECONDS=2; split the file or raise the limit)"}
    assert len(started) == 2, started  # the first was ended by the kernel, the second loaded the rest
    assert started[0].returncode == -signal.SIGXCPU
    assert_good_files_searchable(lib, report)
