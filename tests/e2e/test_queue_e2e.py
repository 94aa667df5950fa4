"""The engine's fair queue in a real browser (rag.scheduler, rag.chat.render): while one chat's long answer
holds the in-process engine's only slot, another chat's answer shows its place in line, then answers
once the first is stopped."""
from __future__ import annotations

import time

import pytest

from test_chat_e2e import FOOTER, answers, ask, assistant_texts, choose, confirm_settings, open_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_waiting_answer_shows_its_place_then_answers(new_chat, server, screenshots):
    first = new_chat()
    first.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(first)
    first.locator("#max_new_tokens [role=slider], #max_new_tokens").last.focus()
    first.keyboard.press("End")  # 1024 tokens: it holds the engine while the second chat asks
    choose(first, "mode", "off")
    confirm_settings(first)
    ask(first, "Write a long, detailed essay about the history of libraries and how people found books.",
        wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the first answer is generating
        texts = assistant_texts(first)
        if texts and len(texts[-1]) > 40 and "Retrieval is off" not in texts[-1]:
            break
        time.sleep(0.1)

    second = new_chat()
    second.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    before = len(answers(second))
    asked = time.monotonic()
    ask(second, "How do I add documents to the library?", wait=False)
    second.get_by_text("1st in line").wait_for(timeout=30_000)
    shown_after = time.monotonic() - asked
    second.screenshot(path=str(screenshots / "queued.png"))
    assert shown_after < 10, f"the place was shown {shown_after:.1f} s after asking"

    first.click("#stop-button")  # the slot frees: the waiting answer starts
    deadline = time.monotonic() + 240
    while len(answers(second)) == before and time.monotonic() < deadline:
        time.sleep(0.3)
    answer = answers(second)[-1]
    assert FOOTER.search(answer) and "in line" not in answer, "the place line went when the answer started"
