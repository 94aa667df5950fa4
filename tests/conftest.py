"""Shared fixtures for the whole suite: the provisioned models and free ports.

Models are built by `make models` (python -m rag models pull smollm2 / tiny); a test that needs one
FAILS (never skips) when it is absent.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from rag.config import REPO_ROOT, offline_env, settings

offline_env()  # before any test imports Hugging Face code


def _model_dir(name: str) -> Path:
    from engines.base import ModelNotFound
    from engines.onnx.models import ModelCatalog

    try:
        return ModelCatalog(**settings().catalog_config()).require(name)
    except ModelNotFound as exc:
        pytest.fail(f"model '{name}' is missing: {exc.message} Run `make test-models`.", pytrace=False)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """Folder of the real SmolLM2-135M-Instruct int8 build."""
    return _model_dir("smollm2")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Folder of the tiny random-weight model (real SmolLM2 tokenizer, gibberish answers)."""
    return _model_dir("tiny")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()


@pytest.fixture
def free_port_factory():
    """Call it for as many free 127.0.0.1 ports as a test needs."""
    return _free_port


# `make test` runs the suite in pytest-xdist workers (--dist load: test by test, in collection order).
# Grouping the tests of one shared server into one worker (a custom scheduler; xdist's own loadgroup does
# nothing with pytest 9, which no longer reads the _nodeid it renames) was tried on 2026-12-06 and made
# async tests fail after a module's sync Playwright in the same worker: not used.


def pytest_collection_modifyitems(config, items):
    """The modules of LONGEST first, longest first, then the rest in the order they were collected. Under
    xdist (`make test`: --dist loadscope --no-loadscope-reorder) each module goes to one worker, handed out
    in this order: the long ones start at once and run beside the short ones, instead of one of them
    running alone at the end while the other workers have nothing left (xdist's own reorder, by number of
    tests, sent the 1-test answer-quality module last: its 2 minutes ran alone). A browser module may run
    before an asyncio test on the same worker: its Playwright session (the `browser` fixture) is closed
    when the module ends."""
    rank = {path: i for i, path in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(LONGEST)))


@pytest.fixture(scope="session")
def pg():
    """One real PostgreSQL server per test process, for every folder's tests (tests/pg_server.py; a short
    folder: its unix socket lives there). A test that stops it starts it again before it ends."""
    import shutil
    import tempfile

    from pg_server import start_pg

    folder = Path(tempfile.mkdtemp(prefix="lrc-pg-"))
    server = start_pg(folder)
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


# The suite's longest modules, longest first: seconds each took in `make test` beside the other workers
# (tests/cpu_account.py, 2026-12-07). A module not listed runs after these.
LONGEST = ("tests/e2e/test_chat_e2e.py",  # 142 s
           "tests/answer/test_answer_quality.py",  # 123 s: 26 SmolLM2 answers in one test
           "tests/security/test_linear_parsers.py",  # 113 s
           "tests/e2e/test_browser_inference.py",  # 103 s
           "tests/e2e/test_history_e2e.py",  # 85 s
           "tests/retrieval/test_ocr.py",  # 76 s
           "tests/security/test_sessions.py",  # 75 s
           "tests/test_queue.py",  # 75 s
           "tests/e2e/test_openwebui_e2e.py",  # 66 s
           "tests/retrieval/test_onnx_embedder.py",  # 64 s
           "tests/api/test_queue_api.py",  # 63 s
           "tests/e2e/test_library_e2e.py",  # 62 s
           "tests/test_package.py",  # 58 s
           "tests/retrieval/test_store_backends.py",  # 52 s
           "tests/retrieval/test_lexical_agree.py",  # 49 s
           "tests/e2e/test_compare_route_e2e.py",  # 48 s
           "tests/jobs/test_workers_pg.py")  # 44 s

# Under xdist (`make test`: TEST_WORKERS processes on this machine's cores) each torch user computes on one
# thread: more threads than cores only spin and wait for each other (measured on tests/retrieval/
# test_library.py under load: 13 % less CPU and 30 % less time). Servers and commands the tests start
# inherit it; set OMP_NUM_THREADS yourself to override.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Ingest beside answers runs at LRC_BACKGROUND_NICE (10) in the app; in the suite, three test processes and
# the servers they start keep both cores busy, and a process at niceness 10 gets a tenth of a core: a child
# that loads the embedder waited over a minute in CI. The suite runs it at its own priority; the tests of
# the default set it themselves (tests/jobs/test_workers_sqlite.py).
os.environ.setdefault("LRC_BACKGROUND_NICE", "0")


# ------------------------------------------------------------------ a small real library
# Two made-up topics no model knows (so an answer can only come from the passages), the FAQ PDF and a
# broken PDF; indexed with the real embedder, FAISS and BM25. Used by the pipeline, compare and routing tests.
CALIBRATION = """# Zorblax widget calibration

To calibrate a Zorblax widget, hold the blue button for seven seconds until the lamp blinks green,
then turn the dial to position 42. A Zorblax widget must be calibrated every 90 days. If the lamp
blinks red, the widget needs a new quartz crystal before it can be calibrated.
"""

TEA = """The Quuxian tea ceremony

The Quuxian tea ceremony uses smoked pine needles steeped for exactly four minutes in water at 85
degrees. Guests drink in silence and the host rings a copper bell between cups.
"""


@pytest.fixture(scope="module")
def zorblax_corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "calibration.md").write_text(CALIBRATION)
    (d / "tea.txt").write_text(TEA)
    (d / "faq.pdf").write_bytes((REPO_ROOT / "docs_corpus" / "faq.pdf").read_bytes())
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return d


@pytest.fixture(scope="module")
def zorblax_library(tmp_path_factory, zorblax_corpus):
    from rag.library import Library

    lib = Library(tmp_path_factory.mktemp("index"))
    report = lib.ingest([zorblax_corpus])
    assert {Path(f).name for f, _ in report.failed} == {"broken.pdf"}, report.failed
    return lib


def pytest_configure(config):
    """LRC_TEST_CPU=<folder>: each test's CPU seconds recorded (tests/cpu_account.py)."""
    import cpu_account  # tests/ is on sys.path: pytest put this conftest's folder there

    cpu_account.register(config)
