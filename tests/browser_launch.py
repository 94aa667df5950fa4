"""The browser every browser test drives: Debian's `chromium-headless-shell` (`make chromium`), Chromium's
headless-only build, the one Playwright itself runs for headless tests; the full `chromium` works too
(LRC_CHROMIUM=/usr/bin/chromium). The same Blink and V8 at the same version, without the desktop browser
around them: a chat page costs about 2.1 CPU s of the browser instead of 3.7 (docs/BENCHMARKS.md, "The
headless shell").
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

HEADLESS_SHELL, FULL = Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium")
# LRC_CHROMIUM, else the headless shell, else (a machine where only the full browser could be installed) chromium
CHROMIUM = Path(os.environ.get("LRC_CHROMIUM") or (FULL if FULL.exists() and not HEADLESS_SHELL.exists() else HEADLESS_SHELL))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require() -> None:
    """Fail the test with what to run when the browser is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian package chromium-headless-shell).")


def launch(pw, *extra: str):
    """A browser from Playwright's ``pw`` (``sync_playwright()``) with FLAGS and ``extra`` (``require()`` first)."""
    require()
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra], headless=True)
