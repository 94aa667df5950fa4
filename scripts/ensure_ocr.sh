#!/usr/bin/env bash
# Installs what OCR of scanned PDFs and images needs when it is missing: Tesseract (with its English
# data) and poppler's pdftoppm (renders a PDF page to an image), both Debian packages.
# Idempotent: nothing is done when `tesseract` and `pdftoppm` are already on the PATH.
set -euo pipefail
if command -v tesseract >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "OCR needs tesseract and pdftoppm: install the packages tesseract-ocr and poppler-utils" >&2
  echo "(on Debian/Ubuntu: apt-get install tesseract-ocr poppler-utils)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing tesseract-ocr and poppler-utils (Debian packages) for OCR of scanned documents..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  tesseract-ocr tesseract-ocr-eng poppler-utils >/dev/null
command -v tesseract >/dev/null && command -v pdftoppm >/dev/null
