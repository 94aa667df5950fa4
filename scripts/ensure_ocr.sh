#!/usr/bin/env bash
# Installs what OCR of scanned PDFs and images needs when it is missing: Tesseract (with its English
# data) and poppler's pdftoppm (renders a PDF page to an image) and pdftotext (the text of a groff-made PDF,
# rag/ingest/loaders/pdf_text.py), all Debian packages; and groff with its PDF output (the package `groff`,
# not only `groff-base`), which the PDF text test and `rag bench pdftext` use to set real man pages as PDFs.
# groff is only for the tests and benchmarks: it is checked with `--with-groff` (`make ocr`, which `make test`
# runs), not by `make run`, so the chat never reports OCR missing for want of groff.
# Idempotent: nothing is done when `tesseract`, `pdftoppm`, `pdftotext` (and `groff -Tpdf`) already work.
set -euo pipefail
WITH_GROFF="${1:-}"
groff_pdf() { [ "$WITH_GROFF" != "--with-groff" ] || { command -v groff >/dev/null 2>&1 && printf '' | groff -Tpdf >/dev/null 2>&1; }; }
if command -v tesseract >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 \
   && command -v pdftotext >/dev/null 2>&1 && groff_pdf; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "OCR needs tesseract and pdftoppm: install the packages tesseract-ocr and poppler-utils; the PDF text" >&2
  echo "test needs groff (on Debian/Ubuntu: apt-get install tesseract-ocr poppler-utils groff)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing tesseract-ocr, poppler-utils and groff (Debian packages) for OCR and PDF text..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  tesseract-ocr tesseract-ocr-eng poppler-utils $([ "$WITH_GROFF" = "--with-groff" ] && echo groff) >/dev/null
command -v tesseract >/dev/null && command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null && groff_pdf
