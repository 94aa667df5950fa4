"""A scan dropped into the chat (issue 15): the indexing message shows each page as OCR reads it, and the
answer cites the scanned page marked "(OCR)". Real server, real Tesseract, Debian chromium.

Run: .venv/bin/python -m pytest -q tests/e2e/test_ocr_e2e.py   (needs `make ocr`; screenshot in docs/screenshots/)
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import settings
from test_chat_e2e import answers, assistant_texts, ask

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
RFAQ = settings().datasets_dir / "rfaq" / "R-FAQ.pdf"


def test_a_dropped_scan_shows_ocr_pages_and_cites_them(new_chat, server, screenshots, tmp_path):
    missing = [c for c in ("tesseract", "pdftoppm") if shutil.which(c) is None]
    assert not missing, f"{' and '.join(missing)} not found: run `make ocr`"
    assert RFAQ.is_file(), f"{RFAQ} is missing (shared datasets)"
    scan = tmp_path / "cran-scan.pdf"  # R FAQ pages 13-15 (2.10 What is CRAN? ... 2.14), no text layer
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "scan_pdf.py"), str(RFAQ), str(scan),
                    "--pages", "13-15"], check=True, capture_output=True)
    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    page.set_input_files("#upload-button-input", [str(scan)])
    page.get_by_text("cran-scan.pdf").first.wait_for()
    before = len(answers(page))
    ask(page, "What is the R Foundation?", wait=False)  # the scan goes with the question
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        texts = "\n".join(assistant_texts(page))
        found = set(re.findall(r"OCR page \d/3 of cran-scan\.pdf", texts))
        if found - seen and not seen:
            page.screenshot(path=str(screenshots / "ocr-progress.png"))
        seen |= found
        if re.search(r"Indexing 1 file\(s\): done\. 1 added", texts):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the scan was not indexed; last messages: {assistant_texts(page)[-2:]}\n{server.log_tail()}")
    assert {"OCR page 1/3 of cran-scan.pdf", "OCR page 3/3 of cran-scan.pdf"} <= seen, seen
    assert "(3 page(s) read by OCR)" in "\n".join(assistant_texts(page))
    deadline = time.monotonic() + 400
    while len(answers(page)) <= before and time.monotonic() < deadline:
        time.sleep(0.2)
    page.wait_for_selector("#stop-button", state="detached")
    answer = answers(page)[-1]
    assert re.search(r"cran-scan\.pdf, p\. 2 \(OCR\)", answer), answer
    page.locator('[data-step-type="assistant_message"]').last.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "ocr-answer.png"))
