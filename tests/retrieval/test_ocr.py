"""OCR of scanned PDFs and images (rag/ingest/loaders/ocr.py, image.py, pdf.py): real Tesseract and
pdftoppm, scans made by the tests from real R FAQ pages (scripts/scan_pdf.py: image-only PDFs, no text
layer) and images rendered by pdftoppm, indexed by the real Library with the real embedding model.

Without tesseract or pdftoppm these tests FAIL (run `make ocr`); the one about a missing tesseract
removes it from the loader processes' PATH for real."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from rag.ingest import loaders, pool
from rag.ingest.loaders import CorruptFile, OcrUnavailable
from rag.ingest.records import FileJob, LoaderConfig, OcrPage
from rag.library import Library
from rag.schema import Chunk, stored_heading

from .conftest import REPO_ROOT, cut_pdf

SCAN_PDF = REPO_ROOT / "scripts" / "scan_pdf.py"


@pytest.fixture(scope="session", autouse=True)
def ocr_tools():
    missing = [c for c in ("tesseract", "pdftoppm") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make ocr` (installs tesseract-ocr and poppler-utils)",
                    pytrace=False)


def scan(src: Path, pages: str, dest: Path, dpi: int = 300) -> Path:
    """An image-only copy of ``pages`` of ``src`` (what a scanner makes), by the project's script."""
    subprocess.run([sys.executable, str(SCAN_PDF), str(src), str(dest), "--pages", pages, "--dpi", str(dpi)],
                   check=True, capture_output=True)
    return dest


def render(src: Path, page: int, dest: Path, fmt: str = "png", dpi: int = 200) -> Path:
    """One page of a PDF as an image file (pdftoppm)."""
    root = dest.with_suffix("")
    subprocess.run(["pdftoppm", f"-{fmt}", "-r", str(dpi), "-singlefile", "-f", str(page), "-l", str(page), str(src),
                    str(root)], check=True)
    made = root.with_suffix(".jpg" if fmt == "jpeg" else f".{fmt}")
    return made if made == dest else made.rename(dest)


def has_text_layer(pdf: Path) -> bool:
    return any((p.extract_text() or "").strip() for p in pypdf.PdfReader(str(pdf)).pages)


def ocr_events(events) -> list:
    return [p for p in events if p.stage == "ocr"]


def top(lib: Library, question: str, k: int = 1):
    hits = lib.search(question, k=k)
    assert hits, question
    return hits


@pytest.fixture(scope="session")
def scanned_basics(rfaq_pdf, tmp_path_factory) -> Path:
    """R FAQ pages 7-9 (sections 2.1 to 2.5.3) as a 3-page scan without a text layer."""
    out = scan(rfaq_pdf, "7-9", tmp_path_factory.mktemp("scan") / "basics-scan.pdf")
    assert not has_text_layer(out)
    return out


def test_a_scanned_pdf_is_read_by_ocr_and_cited_with_its_pages(library, scanned_basics):
    events = []
    report = library.ingest([scanned_basics], progress=events.append)
    assert not report.failed and report.added == [str(scanned_basics)], report.failed
    assert report.ocr_pages == 3 and "3 page(s) read by OCR" in report.summary()
    ocr = ocr_events(events)
    assert [(p.page, p.step, p.steps) for p in ocr] == [(1, 1, 3), (2, 2, 3), (3, 3, 3)]
    assert ocr[0].describe() == "OCR page 1/3 of basics-scan.pdf"
    for question, page in [("What machines does R run on?", 1), ("What is the current version of R?", 2),
                           ("How can R be installed on Windows?", 3), ("How can R be obtained?", 2)]:
        hit = top(library, question)[0]
        assert (hit.chunk.name, hit.chunk.page) == ("basics-scan.pdf", page), (question, hit.chunk.citation())
        assert hit.chunk.ocr and hit.chunk.citation() == f"basics-scan.pdf, p. {page} (OCR)"
    assert "major.minor.patchlevel" in top(library, "What is the current version of R?")[0].chunk.text


def test_images_are_read_by_ocr(library, rfaq_pdf, tmp_path):
    png = render(rfaq_pdf, 10, tmp_path / "binaries.png")  # 2.6 Unix-like binaries, 2.7 documentation
    jpg = render(rfaq_pdf, 13, tmp_path / "cran.jpg", fmt="jpeg")  # 2.10 What is CRAN?
    frames = [Image.open(render(rfaq_pdf, p, tmp_path / f"p{p}.png")).convert("L") for p in (14, 16)]
    tif = tmp_path / "two-pages.tif"
    frames[0].save(tif, save_all=True, append_images=frames[1:], compression="tiff_deflate", dpi=(200, 200))
    (tmp_path / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n")
    report = library.ingest([png, jpg, tif, tmp_path / "tea.md"])
    assert not report.failed and len(report.added) == 4, report.failed
    assert report.ocr_pages == 4
    hit = top(library, "Are there Unix-like binaries for R?")[0]
    assert hit.chunk.name == "binaries.png" and hit.chunk.page is None
    assert hit.chunk.citation() == "binaries.png § 2.6 Are there Unix-like binaries for R? (OCR)"  # its heading
    hit = top(library, "What is CRAN, the Comprehensive R Archive Network?")[0]
    assert hit.chunk.name == "cran.jpg" and hit.chunk.ocr
    hit = top(library, "Why is R named R?")[0]  # 2.12, the TIFF's first frame
    assert (hit.chunk.name, hit.chunk.page, hit.chunk.ocr) == ("two-pages.tif", 1, True)
    hit = top(library, "What is S-Plus?")[0]  # 3.2, its second frame
    assert (hit.chunk.name, hit.chunk.page) == ("two-pages.tif", 2), hit.chunk.citation()
    tea = top(library, "At what temperature is green tea brewed?")[0]
    assert tea.chunk.name == "tea.md" and not tea.chunk.ocr and tea.chunk.citation() == "tea.md § Tea"


def test_a_mixed_pdf_reads_only_its_scanned_page_by_ocr(library, rfaq_pdf, tmp_path):
    text_pages = cut_pdf(rfaq_pdf, [12, 13, 16], tmp_path / "text-pages.pdf")
    scanned = scan(rfaq_pdf, "14", tmp_path / "page14-scan.pdf")
    writer = pypdf.PdfWriter()
    for reader, i in [(pypdf.PdfReader(str(text_pages)), 0), (pypdf.PdfReader(str(text_pages)), 1),
                      (pypdf.PdfReader(str(scanned)), 0), (pypdf.PdfReader(str(text_pages)), 2)]:
        writer.add_page(reader.pages[i])
    mixed = tmp_path / "mixed.pdf"
    with open(mixed, "wb") as f:
        writer.write(f)
    events = []
    report = library.ingest([mixed], progress=events.append)
    assert not report.failed and report.ocr_pages == 1
    assert [(p.file, p.page, p.step, p.steps) for p in ocr_events(events)] == [("mixed.pdf", 3, 1, 1)]
    hit = top(library, "Can I use R for commercial purposes?")[0]  # R FAQ 2.11, on the scanned page
    assert (hit.chunk.page, hit.chunk.ocr) == (3, True) and hit.chunk.citation() == "mixed.pdf, p. 3 (OCR)"
    hit = top(library, "What mailing lists exist for R?")[0]  # 2.9, a text page
    assert (hit.chunk.page, hit.chunk.ocr) == (1, False) and hit.chunk.citation() == "mixed.pdf, p. 1"
    hit = top(library, "What are the differences between R and S?")[0]
    assert (hit.chunk.page, hit.chunk.ocr) == (4, False)


def test_a_pdf_with_text_is_never_rendered(rfaq_pdf, monkeypatch):
    monkeypatch.setenv("LRC_TESSERACT", "/nonexistent/tesseract")  # would fail a file that needed OCR
    pages = []
    doc = loaders.load(rfaq_pdf, progress=lambda *a: pages.append(a))
    assert pages == [] and doc.ocr_pages == [] and doc.pages == 52
    assert not any(b.ocr for b in doc.blocks)


def test_the_page_limit_is_kept_and_said(tmp_path, scanned_basics, monkeypatch, capsys, embedder):
    from rag.cli import main

    monkeypatch.setenv("LRC_OCR_MAX_PAGES", "2")
    idx = tmp_path / "index"
    assert main(["index", "--index-dir", str(idx), str(scanned_basics)]) == 0
    out, err = capsys.readouterr()
    assert "OCR page 1/2 of basics-scan.pdf" in err and "OCR page 2/2 of basics-scan.pdf" in err, err
    assert "3/3" not in err
    assert ("NOTE       basics-scan.pdf: OCR stopped at 2 of 3 scanned pages; set LRC_OCR_MAX_PAGES to read more"
            in out), out
    assert "(2 page(s) read by OCR)" in out
    lib = Library(idx)
    pages = {h.chunk.page for h in lib.search("R", k=200, mode="dense")}
    assert pages == {1, 2}  # page 3 was not read


def test_without_tesseract_the_file_fails_saying_how_to_install_it(tmp_path, rfaq_pdf, scanned_basics, monkeypatch,
                                                                   embedder):
    png = render(rfaq_pdf, 13, tmp_path / "cran.png")
    (tmp_path / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # the loader processes start with this PATH: no tesseract there
    lib = Library(tmp_path / "index")
    report = lib.ingest([png, scanned_basics, tmp_path / "tea.md"])
    assert report.added == [str(tmp_path / "tea.md")], report
    failed = dict(report.failed)
    assert set(failed) == {str(png), str(scanned_basics)}
    for name, reason in [("cran.png", failed[str(png)]), ("basics-scan.pdf", failed[str(scanned_basics)])]:
        assert reason.startswith(f"{name}: this file needs OCR, which is not available"), reason
        assert "was not found" in reason and "make ocr" in reason and "apt-get install tesseract-ocr" in reason
    monkeypatch.undo()
    again = lib.ingest([png, tmp_path / "tea.md"])  # installed (back on the PATH): the file is read now
    assert again.added == [str(png)] and not again.failed


def test_a_tesseract_setting_that_points_nowhere_fails_the_file(tmp_path, rfaq_pdf, monkeypatch):
    monkeypatch.setenv("LRC_TESSERACT", str(tmp_path / "no-such-tesseract"))
    with pytest.raises(OcrUnavailable) as info:
        loaders.load(render(rfaq_pdf, 13, tmp_path / "cran.png"))
    assert "no-such-tesseract` was not found" in str(info.value) and "make ocr" in str(info.value)


def test_blank_scans_say_no_text_was_found(library, rfaq_pdf, tmp_path):
    white = Image.new("L", (1700, 2200), 255)
    blank_png = tmp_path / "blank.png"
    white.save(blank_png)
    blank_pdf = tmp_path / "blank-scan.pdf"
    white.save(blank_pdf, "PDF", resolution=200.0)
    mixed = tmp_path / "with-blank-page.pdf"  # a text page, then a blank scanned page
    writer = pypdf.PdfWriter()
    writer.add_page(pypdf.PdfReader(str(rfaq_pdf)).pages[12])
    writer.add_page(pypdf.PdfReader(str(blank_pdf)).pages[0])
    with open(mixed, "wb") as f:
        writer.write(f)
    (tmp_path / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n")
    report = library.ingest([blank_png, blank_pdf, mixed, tmp_path / "tea.md"])
    assert sorted(report.added) == sorted([str(mixed), str(tmp_path / "tea.md")]), report
    failed = dict(report.failed)
    assert failed[str(blank_png)] == "blank.png: no text found by OCR (a blank or unreadable scan?)"
    assert failed[str(blank_pdf)].startswith("blank-scan.pdf: no text found by OCR"), failed
    assert report.warning_lines() == ["with-blank-page.pdf: no text found by OCR on page(s) 2"]
    assert top(library, "What is CRAN?")[0].chunk.citation() == "with-blank-page.pdf, p. 1"


def test_a_damaged_image_is_named_with_the_reason(tmp_path, rfaq_pdf):
    good = render(rfaq_pdf, 13, tmp_path / "good.png").read_bytes()
    bad = tmp_path / "cut.png"
    bad.write_bytes(good[:400])
    with pytest.raises(CorruptFile) as info:
        loaders.load(bad)
    assert str(info.value).startswith("cut.png: the file is damaged") and "not a readable image" in str(info.value)
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a picture")
    with pytest.raises(CorruptFile, match="photo.jpg: .*not a JPG image"):
        loaders.load(fake)


def test_pausing_a_loader_pauses_its_ocr_commands(embedder, scanned_basics):
    """The loader processes lead their own process group, so the pause while the model computes
    (SIGSTOP) also stops the tesseract they run; continuing continues it."""
    import psutil

    job = FileJob(scanned_basics, scanned_basics.stat().st_size, 0)
    config = LoaderConfig(embedder.path, embedder.window)
    notes: list[OcrPage] = []
    with pool.LoaderPool([job], 1, config, chunker=lambda: None, note=notes.append) as lp:
        loader = psutil.Process(lp.processes[0].pid)
        assert os.getpgid(loader.pid) == loader.pid  # leads its own process group
        deadline = time.monotonic() + 60
        ocr = []
        while not ocr and time.monotonic() < deadline:
            ocr = [c for c in loader.children(recursive=True) if c.name() == "tesseract"]
            time.sleep(0.02)
        assert ocr, "the loader never ran tesseract"
        with lp.paused():
            time.sleep(0.3)
            states = [c.status() for c in ocr if c.is_running()]
            assert states and all(s == psutil.STATUS_STOPPED for s in states), states
        time.sleep(0.3)
        assert [c.status() for c in ocr if c.is_running()] != states  # continued (or done)
    # leaving an unfinished run kills the loader and its OCR commands (gone within seconds, on a busy machine too)
    _, alive = psutil.wait_procs(ocr, timeout=10)
    assert not [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], alive
    assert notes and notes[0].step == 1 and notes[0].steps == 3


def test_ocr_mark_is_kept_in_the_heading_and_taken_off_by_chunk():
    c = Chunk(id=1, text="t", source="/x/scan.pdf", page=3, heading=stored_heading("2.1 What is R?", True))
    assert c.ocr and c.heading == "2.1 What is R?" and c.citation() == "scan.pdf, p. 3 (OCR)"
    plain = Chunk(id=2, text="t", source="/x/a.pdf", page=3, heading=stored_heading("H", False))
    assert not plain.ocr and plain.heading == "H" and plain.citation() == "a.pdf, p. 3"


def test_the_api_and_the_answer_scorer_know_ocr_sources():
    from rag.answer_eval import _CITATION
    from rag.api.render import Transcript
    from rag.events import Sources
    from rag.schema import Hit

    scanned = Hit(Chunk(id=1, text="scanned text", source="/d/scan.pdf", page=3, heading=stored_heading("", True)),
                  0.5, 1)
    typed = Hit(Chunk(id=2, text="typed text", source="/d/notes.md"), 0.4, 2)
    t = Transcript(streaming=False)
    shown = t.feed(Sources([scanned, typed], [scanned, typed]))
    assert shown == "**Sources:**\n[1] scan.pdf, p. 3 (OCR)\n[2] notes.md"
    assert [(s["file"], s["page"], s["ocr"]) for s in t.sources] == [("scan.pdf", 3, True), ("notes.md", None, False)]
    assert _CITATION.sub("", "Scanned text. (scan.pdf, p. 3 (OCR))").strip() == "Scanned text."


def test_the_upload_accept_list_the_indexer_and_the_readme_agree():
    config = tomllib.loads((REPO_ROOT / ".chainlit" / "config.toml").read_text(encoding="utf-8"))
    accept = config["features"]["spontaneous_file_upload"]["accept"]
    accepted = {ext for exts in accept.values() for ext in exts}
    assert accepted == loaders.SUPPORTED_EXTS
    for ext in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pptx"):
        assert loaders.kind_for(Path(f"a{ext.upper()}")) in ("image", "pptx")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    types = readme.split("2. Drop files onto the chat", 1)[1].split("\n3. ", 1)[0]
    for ext in (".docx", ".odt", ".pptx", ".png", ".jpg", ".tif"):
        assert ext in types, ext
    from rag.cmd.index import HELP

    for ext in (".pdf", ".docx", ".odt", ".pptx", ".png", ".jpg", ".tif"):
        assert ext in HELP
