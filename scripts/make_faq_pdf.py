#!/usr/bin/env python3
"""Write docs_corpus/faq.pdf: the Local RAG Chat FAQ as a small, real, text-layer PDF.

    python scripts/make_faq_pdf.py [--out docs_corpus/faq.pdf]

No PDF library is needed: the file is written directly (PDF 1.4, the standard Helvetica fonts with
WinAnsiEncoding, one content stream per page, an xref table). Each section starts a new page so the
app's citations show different page numbers. The output is deterministic (no dates, no ids).
"""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

TITLE = "Local RAG Chat - Frequently asked questions"

# (section title, [(question, answer), ...]); one section per page.
SECTIONS = [
    ("Privacy and data", [
        ("Does Local RAG Chat send my documents to the internet?",
         "No. Local RAG Chat is local-first: your documents, the search index and the language model "
         "stay on your computer. Indexing, search and answering all run on this machine. The only "
         "exception is a Foundry Local or OpenAI-compatible endpoint that you configure yourself with "
         "FOUNDRY_BASE_URL; if you point it at a remote server, your questions and the passages go there."),
        ("Where are my documents and the index stored?",
         "In the data folder: .data in the project folder, or ~/.local/share/local-rag-chat for an "
         "installed copy (LRC_DATA_DIR changes it). The index lives in its index folder and the files you "
         "drop into the chat are copied into its uploads folder, keeping their original names. Models are "
         "cached separately, in ~/.cache/local-rag-chat/models unless you set LRC_CACHE_DIR."),
        ("How do I delete everything?",
         "Stop the app and delete the data folder. It holds the index, your uploads, your past chats "
         "(history.sqlite3 and the passages they showed) and, with logins on, the users. There is no "
         "telemetry. The next start indexes the docs_corpus folder again. To delete one chat, use its menu "
         "in the sidebar; to keep no chats at all, set LRC_HISTORY=0."),
        ("Do other people on my network see my chats?",
         "By default the server listens on 127.0.0.1 only, so only your own computer can open it. Each "
         "browser tab is its own chat with its own settings. To share the app on a network, turn on logins "
         "(LRC_AUTH=password): each person then sees only their own chats and the files they dropped."),
    ]),
    ("Documents and answers", [
        ("Which file types can I add?",
         "PDF, Word (.docx), OpenDocument text (.odt), PowerPoint (.pptx), Markdown (.md), plain text "
         "(.txt), reStructuredText (.rst), HTML (.html, .htm) and images of pages (.png, .jpg, .tif). "
         "Scanned PDF pages and images are read by OCR (Tesseract; make ocr installs it). Files larger "
         "than 50 MB are refused unless you raise LRC_MAX_FILE_MB."),
        ("What are the numbers like [1] and [2] in an answer?",
         "They are citations. Every answer is written from numbered passages of your documents, and "
         "[2] means the statement comes from passage 2. The sources under the answer list each passage "
         "with its file name and, for PDFs, its page number. Click a PDF source to open it at that page."),
        ("Why does the app say it found nothing?",
         "When no passage in the library is relevant to the question, the app says so instead of "
         "guessing. Add a document that contains the answer, rephrase the question with the words "
         "your documents use, or switch the retrieval mode to lexical for exact names and codes."),
        ("How many passages does the model see?",
         "Ten by default (the Passages setting, LRC_TOP_K); their best sentences, about 1,400 tokens "
         "(LRC_CONTEXT_TOKENS), are what it reads. More passages give the model more context "
         "but make the first token slower, because the model must read a longer prompt."),
    ]),
    ("Models and speed", [
        ("Which model answers my questions?",
         "By default SmolLM2-135M-Instruct, a very small model that runs in the app itself through "
         "ONNX Runtime GenAI. It is quick but makes mistakes. For better answers use Phi-4-mini "
         "(python -m rag models pull phi-4-mini, about 4.9 GB) or a model served by Foundry Local."),
        ("What do TTFT and tokens/s in the footer mean?",
         "TTFT is the time to first token: how long you waited before the answer started. Tokens per "
         "second is how fast the rest of the answer was written. Compare them between models to choose "
         "a model that is fast enough on your computer."),
        ("How fast is indexing?",
         "About 30 passages per second on a two-core laptop, so a 100-page manual takes about 15 "
         "seconds (scanned pages read by OCR take a few seconds each). Files that did not change since "
         "they were indexed are skipped."),
        ("Can I stop a long answer?",
         "Yes. Press the stop button while the answer streams. Generation ends at once and you can ask "
         "the next question straight away."),
    ]),
]

PAGE_W, PAGE_H = 612, 792  # US Letter, points
MARGIN = 72
WRAP = 88  # characters per line at 10 pt Helvetica on a 468 pt line (conservative)


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_stream(section: str, items: list[tuple[str, str]], page_no: int, pages: int) -> bytes:
    lines: list[tuple[str, int, str]] = []  # (font, size, text)
    if page_no == 1:
        lines.append(("F2", 16, TITLE))
        lines.append(("F1", 10, ""))
    lines.append(("F2", 13, section))
    lines.append(("F1", 10, ""))
    for question, answer in items:
        for part in textwrap.wrap(question, WRAP - 8):
            lines.append(("F2", 11, part))
        for part in textwrap.wrap(answer, WRAP):
            lines.append(("F1", 10, part))
        lines.append(("F1", 10, ""))
    out = ["BT"]
    y = PAGE_H - MARGIN
    for font, size, text in lines:
        y -= int(size * 1.45)
        if text:
            out.append(f"/{font} {size} Tf 1 0 0 1 {MARGIN} {y} Tm ({_esc(text)}) Tj")
    out.append(f"/F1 9 Tf 1 0 0 1 {MARGIN} {MARGIN // 2} Tm (Local RAG Chat FAQ - page {page_no} of {pages}) Tj")
    out.append("ET")
    return "\n".join(out).encode("cp1252")


def build_pdf() -> bytes:
    pages = len(SECTIONS)
    objects: list[bytes] = []  # object n is objects[n-1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_obj = add(b"")
    font1 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    font2 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for i, (section, items) in enumerate(SECTIONS, start=1):
        stream = _page_stream(section, items, i, pages)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add((f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
                         f"/Resources << /Font << /F1 {font1} 0 R /F2 {font2} 0 R >> >> "
                         f"/Contents {content} 0 R >>").encode()))
    objects[pages_obj - 1] = (f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
                              f"/Count {len(kids)} >>").encode()
    info = add(f"<< /Title ({_esc(TITLE)}) /Producer (scripts/make_faq_pdf.py) >>".encode())
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()

    data = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(data))
        data += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        data += b"%010d 00000 n \n" % off
    data += (f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
             f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "docs_corpus" / "faq.pdf")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(build_pdf())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(SECTIONS)} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
