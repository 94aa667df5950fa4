"""The OpenAI-compatible API on the chat's own server (`chainlit run app.py` mounts /v1): the official
client asks while a chat in the browser is answering, and both finish."""
from __future__ import annotations

import threading
import time

import pytest

from test_chat_e2e import FOOTER, answers, assistant_texts, ask

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_api_request_while_the_browser_chat_answers(new_chat, server, screenshots):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=240)
    ids = [m.id for m in client.models.list()]
    assert "rag" in ids and any(i.startswith("rag:smollm2") for i in ids), ids

    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    before = len(answers(page))
    ask(page, "How do I add documents to the library?", wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the chat's answer is streaming
        texts = assistant_texts(page)
        if texts and "From your documents:" in texts[-1] and not FOOTER.search(texts[-1]):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the chat did not start answering: {assistant_texts(page)[-2:]}")

    result: dict = {}

    def call():
        result["response"] = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "Which file types can I add?"}])

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(240)
    assert "response" in result, "the API request did not finish"
    content = result["response"].choices[0].message.content
    assert "**Sources:**" in content and ("faq.pdf" in content or "user-guide.md" in content), content
    # the browser's answer finishes too
    deadline = time.monotonic() + 240
    while len(answers(page)) <= before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(answers(page)) > before, assistant_texts(page)[-2:]
    assert "Sources:" in answers(page)[-1]
