"""Compare mode and the "auto" engine in the browser: a real Chainlit server, the real in-process
SmolLM2 and a real Foundry Local service started by the test, Debian chromium via Playwright."""
from __future__ import annotations

import re
import time

import pytest

from test_chat_e2e import assistant_texts, choose, confirm_settings, open_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def wait_for_text(page, needle: str, timeout: float = 300) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = assistant_texts(page)
        if any(needle in t for t in texts):
            page.wait_for_selector("#stop-button", state="detached")
            time.sleep(0.5)
            return assistant_texts(page)
        time.sleep(0.2)
    pytest.fail(f"{needle!r} did not appear within {timeout:.0f}s; last messages: {assistant_texts(page)[-3:]}")


def test_compare_in_process_and_foundry_local_side_by_side(new_chat, server, screenshots, tmp_path, smollm2_dir):
    from foundry_support import Launcher  # tests/foundry: the real service in a child process

    launcher = Launcher(root=tmp_path, model_dir=smollm2_dir, port=server.foundry_port).start()
    try:
        page = new_chat(height=2200)  # tall: both answers and the verdict in one screenshot
        page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
        open_settings(page)
        page.click("#compare")
        page.get_by_role("option", name=re.compile(r"^Foundry Local · ")).first.click()
        confirm_settings(page)
        page.fill("#chat-input", "Which file types can I add?")
        page.click("#chat-submit")
        texts = wait_for_text(page, "Compared:")
        a = next(t for t in texts if t.startswith("A · "))
        b = next(t for t in texts if t.startswith("B · "))
        verdict = next(t for t in texts if t.startswith("Compared:"))
        assert "In-process" in a and re.search(r"In-process \(ONNX Runtime GenAI\) · .*TTFT .* tokens/s", a), a
        assert re.search(r"Foundry Local · .*TTFT .* tokens/s", b) and launcher.model in b, b
        for side in (a, b):
            assert "Sources:" in side and "From your documents:" in side, side
        assert "answer tokens" in verdict and "cited" in verdict, verdict
        page.screenshot(path=str(screenshots / "compare.png"))
    finally:
        assert launcher.stop() == 0


def test_auto_engine_says_who_answered_and_why(new_chat, server, screenshots):
    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(page)
    choose(page, "engine", "Auto (routing rules)")
    confirm_settings(page)
    page.fill("#chat-input", "How do I add documents to the library?")
    page.click("#chat-submit")
    texts = wait_for_text(page, "answered by")
    answer = next(t for t in texts if "answered by" in t)
    # the shipped routing.toml: the in-process model first, Foundry Local (not running here) behind it
    assert re.search(r"answered by In-process \S*smollm2\S*: first target in routing\.toml", answer), answer
    page.screenshot(path=str(screenshots / "auto-routed.png"))
