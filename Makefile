# Local RAG Chat — the README's two commands are `make run` and `make test`.
# Every step is idempotent: what is already there is skipped (stamps, cached model folders).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
FOUNDRY_VENV := .venv-foundry
OPENWEBUI_VENV := .venv-openwebui
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup models test-models foundry-setup openwebui-setup chromium ocr browser-setup run test test-fast foundry bench eval eval-docs clean-venv help

help:
	@echo "make run    - set up what is missing and start the chat on http://$(HOST):$(PORT)"
	@echo "make test   - set up what is missing and run the whole test suite"
	@echo "make foundry - start a local Foundry Local service with the SmolLM2 model"
	@echo "make browser-setup - ONNX Runtime Web (npm ci in browser/) and the model build for the /browser page"
	@echo "make bench / make eval - benchmarks and retrieval evaluation (docs/BENCHMARKS.md)"

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

setup: $(BIN)/.installed

# Builds SmolLM2-135M-Instruct (int8) into the cache folder, and exports the embedding model to ONNX there
# (rag.onnx_encoder); both skipped when present.
models: setup
	$(BIN)/python -m rag models pull smollm2
	$(BIN)/python -m rag models pull embedder

# The tests also need the tiny random-weight model (fast plumbing tests).
test-models: models
	$(BIN)/python -m rag models pull tiny

$(FOUNDRY_VENV)/.installed: scripts/foundry-requirements.txt
	test -x $(FOUNDRY_VENV)/bin/python || $(PY) -m venv $(FOUNDRY_VENV)
	$(FOUNDRY_VENV)/bin/pip install -q --disable-pip-version-check -r scripts/foundry-requirements.txt
	touch $@

foundry-setup: $(FOUNDRY_VENV)/.installed

# Open WebUI for the API tests (tests/openwebui): its own venv, built once.
$(OPENWEBUI_VENV)/.installed: scripts/openwebui-requirements.txt
	test -x $(OPENWEBUI_VENV)/bin/python || $(PY) -m venv $(OPENWEBUI_VENV)
	$(OPENWEBUI_VENV)/bin/pip install -q --disable-pip-version-check -r scripts/openwebui-requirements.txt
	touch $@

openwebui-setup: $(OPENWEBUI_VENV)/.installed

chromium:
	@bash scripts/ensure_chromium.sh

# In-browser inference (/browser): ONNX Runtime Web from npm, pinned by browser/package-lock.json (served by
# the app, never a CDN), and the page's fp32 SmolLM2 build; both skipped when present.
browser/node_modules/.installed: browser/package.json browser/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ and npm (Debian: apt-get install nodejs npm), then run make browser-setup"; exit 1; }
	cd browser && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

browser-setup: models browser/node_modules/.installed
	$(BIN)/python -m rag models pull smollm2-web

# Tesseract + pdftoppm for OCR of scanned PDFs and images (Debian packages); skipped when present.
ocr:
	@bash scripts/ensure_ocr.sh --with-groff

run: models
	@$(MAKE) --no-print-directory browser-setup || echo "The in-browser page (/browser) is not available: it needs Node.js and npm (make browser-setup). The chat works without it."
	@bash scripts/ensure_ocr.sh || echo "OCR is not available: scanned PDFs and images will not be indexed until tesseract-ocr and poppler-utils are installed (make ocr)."
	$(BIN)/chainlit run app.py --host $(HOST) --port $(PORT) --headless

# The suite runs in TEST_WORKERS processes (pytest-xdist): most tests wait on servers, browsers and
# subprocesses, so 4 workers keep 2 cores busy. TEST_WORKERS=0 runs it in one process. --dist loadscope
# sends each module to one worker, so a module's servers, browser and model are started once, not once per
# worker that got one of its tests (1,452 -> 1,268 CPU s for the suite: docs/BENCHMARKS.md).
# --no-loadscope-reorder keeps the order tests/conftest.py gives (its LONGEST modules first): xdist's own
# reorder (modules with more tests first) left the longest single test to run alone at the end.
TEST_WORKERS ?= 4
test: test-models foundry-setup openwebui-setup chromium ocr browser-setup eval-docs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=15

test-fast: test-models ocr
	$(BIN)/python -m pytest -q -m "not e2e and not foundry"

foundry: models foundry-setup
	$(BIN)/python scripts/foundry_local.py --model smollm2

bench: models foundry-setup ocr
	$(BIN)/python -m rag bench all

# Documents of the unseen answer sets (bench/data/unseen), built from Debian packages into the cache folder.
eval-docs:
	@bash scripts/fetch_eval_docs.sh

eval: setup
	$(BIN)/python -m rag eval --dataset ../shared/datasets/pyfaq

clean-venv:
	rm -rf $(VENV) $(FOUNDRY_VENV)
