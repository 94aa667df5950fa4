"""The chat as a user sees it: a real Chainlit server, real models, Debian chromium via Playwright.

Run: .venv/bin/python -m pytest -q -m e2e tests/e2e   (screenshots land in docs/screenshots/)

The welcome test must open the session's first chat (it checks that the first start indexes docs_corpus/
visibly): this file sorts first in tests/e2e, keep other test files' names after it.
"""
from __future__ import annotations

import re
import time

import pytest

from rag.config import settings

SHARED = settings().datasets_dir.parent  # not `from conftest import`: several test folders have a conftest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = '[data-step-type="assistant_message"]'
FOOTER = re.compile(r"TTFT .* tokens/s")
SMALL_PDF = SHARED / "datasets" / "pdfs" / "R-data.pdf"  # 41 pages: indexes in well under a minute


def assistant_texts(page) -> list[str]:
    return page.locator(MESSAGES).all_text_contents()  # not inner_text: CSS upper-cases the source badges


def answers(page) -> list[str]:
    return [t for t in assistant_texts(page) if FOOTER.search(t)]


def ask(page, question: str, server=None, timeout: float = 240, wait: bool = True, button: bool = False):
    """Send a question; wait for its answer (the footer). Returns (answer text, partial lengths seen
    while the answer body was streaming)."""
    before = len(answers(page))
    n_messages = len(assistant_texts(page))
    if button:  # an example question on the welcome message
        page.get_by_role("button", name=question).click()
    else:
        page.fill("#chat-input", question)
        page.click("#chat-submit")
    if not wait:
        return None, []
    seen: list[tuple[int, int]] = []  # (message count, length of the newest message) while streaming
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = answers(page)
        if len(done) > before:
            if server is not None and "start_to_first_answer_s" not in server.timings:
                server.timings["start_to_first_answer_s"] = round(time.monotonic() - server.timings["t0"], 2)
            page.wait_for_selector("#stop-button", state="detached")  # the run is over: elements are linked
            time.sleep(0.3)
            done = answers(page)
            last = max((c for c, _ in seen), default=0)
            return done[-1], [n for c, n in seen if c == last]  # the answer message is the newest one
        texts = assistant_texts(page)
        if len(texts) > n_messages and "Sources:" not in texts[-1] and "TTFT" not in texts[-1]:
            seen.append((len(texts), len(texts[-1])))
        time.sleep(0.1)
    pytest.fail(f"no answer to {question!r} within {timeout:.0f}s; last messages: {assistant_texts(page)[-3:]}"
                + (f"\nserver log:\n{server.log_tail()}" if server else ""))


def open_settings(page):
    page.click("#chat-settings-open-modal")
    page.wait_for_selector("#engine")


def choose(page, widget_id: str, option: str):
    page.click(f"#{widget_id}")
    page.get_by_role("option", name=option, exact=True).click()


def confirm_settings(page):
    page.click("#confirm")
    page.wait_for_selector("#confirm", state="detached")


def test_welcome_names_what_is_indexed(new_chat, server, screenshots):
    page = new_chat()
    welcome = page.get_by_text("Welcome to Local RAG Chat")
    welcome.wait_for(timeout=240_000)  # the very first chat indexes docs_corpus/ (a fresh data folder)
    text = "\n".join(assistant_texts(page))
    m = re.search(r"holds (\d+) files \((\d+) passages\)", text)
    assert m, text
    assert int(m.group(1)) >= 2 and int(m.group(2)) > 5, text
    assert "First start: indexing" in text and "done" in text, "the first start indexes docs_corpus/ visibly"
    assert "drop" in text.lower(), "the welcome says how to add documents"
    for q in ("How do I add documents to the library?", "Does Local RAG Chat send my documents to the internet?"):
        assert page.get_by_role("button", name=q).is_visible(), f"example question {q!r} is offered"
    page.screenshot(path=str(screenshots / "welcome.png"))
    # an example question is answered from docs_corpus/, citing the FAQ PDF with its page
    answer, _ = ask(page, "Does Local RAG Chat send my documents to the internet?", server, button=True)
    assert page.locator('[data-step-type="user_message"]').last.text_content().startswith("Does Local RAG Chat")
    assert re.search(r"faq\.pdf, p\. 1", answer), answer


def test_question_about_docs_corpus_streams_a_cited_answer(new_chat, server, screenshots):
    frames: list[str] = []
    page = new_chat(frames=frames)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    before = len(frames)
    answer, partial = ask(page, "How do I connect a Foundry Local endpoint?", server)
    # the model's pieces reach the page at most once per LRC_STREAM_INTERVAL_MS (100 ms): over the time it
    # wrote, a frame per 100 ms at most (and a few for the quote, the sources and the footer), where a frame
    # per token would be more whenever it writes faster than 10 tokens/s (about 25 on a quiet machine)
    streamed = sum('"stream_token"' in f for f in frames[before:])
    tokens = int(re.search(r"(\d+) answer tokens", answer).group(1))
    rate = float(re.search(r"([\d.]+) tokens/s", answer).group(1))
    assert 2 <= streamed <= tokens / rate / 0.1 + 6, (streamed, tokens, rate)
    # the shown text grew over many samples (Markdown closing a construct, "**" or a code span, may shorten
    # the rendered text by a few characters now and then: seen 673 -> 671 in a parallel run)
    grew = sum(b > a for a, b in zip(partial, partial[1:]))
    shrank = [(a, b) for a, b in zip(partial, partial[1:]) if b < a]
    assert len(set(partial)) >= 2 and grew >= 2 and partial[-1] > partial[0], f"tokens were not streamed: {partial}"
    assert all(a - b <= 8 for a, b in shrank) and len(shrank) <= grew // 4, f"the text went back: {partial}"
    assert "Sources:" in answer and "user-guide.md" in answer, answer
    assert "In-process" in answer and "smollm2" in answer.lower(), answer
    # the retrieval step is there and can be expanded
    step = page.get_by_text("Retrieval", exact=False).first
    assert step.is_visible()
    page.screenshot(path=str(screenshots / "answer-with-sources.png"))
    # the sources are links (not swallowed by a code block the model left open); one opens as plain text
    link = page.locator(MESSAGES).last.get_by_role("link", name=re.compile(r"\[\d\] user-guide\.md")).first
    name = link.text_content()
    link.click()
    page.wait_for_function("n => document.querySelector('#side-view-title')?.textContent.includes(n)", arg=name)
    side = page.locator("#side-view-content")
    assert side.locator("pre, code").count() >= 1, "the passage is rendered as a plain-text code block"
    assert len(side.text_content().strip()) > 100, "the passage text is shown"
    page.screenshot(path=str(screenshots / "source-passage.png"))


def test_the_page_contacts_only_this_machine(new_chat, server):
    """Private by default: loading the chat and getting an answer asks nothing of another host (the
    page Chainlit ships links a CDN and preconnects to Google Fonts; the app removes both)."""
    import httpx
    from urllib.parse import urlsplit

    html = httpx.get(server.url + "/", timeout=30).text
    assert "<div id=\"root\">" in html, html[:500]
    external = re.findall(r"<(?:link|script)\b[^>]*(?:href|src)=\"(?:https?:)?//[^\"]*\"", html)
    assert not external, f"the page still links other hosts: {external}"
    seen: list[str] = []
    page = new_chat(requests=seen)
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    ask(page, "How do I add documents to the library?", server)
    hosts = {urlsplit(u).hostname for u in seen if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert len(seen) > 5 and hosts == {"127.0.0.1"}, f"requests went to {hosts}: {[u for u in seen if '127.0.0.1' not in u][:5]}"


def test_upload_pdf_then_answer_cites_it_with_a_page(new_chat, server, screenshots, tmp_path):
    assert SMALL_PDF.is_file(), f"{SMALL_PDF} is missing (shared datasets)"
    broken = tmp_path / "broken-scan.pdf"
    broken.write_bytes(b"%PDF-1.4\nnot really a PDF\n")
    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    page.set_input_files("#upload-button-input", [str(SMALL_PDF), str(broken)])
    page.get_by_text("R-data.pdf").first.wait_for()
    answer, _ = ask(page, "How do I read a spreadsheet or a CSV file into R with read.table?", server, timeout=400)
    texts = "\n".join(assistant_texts(page))
    assert re.search(r"Indexing 2 file\(s\): done\. 1 added", texts), texts
    assert re.search(r"broken-scan\.pdf was not indexed: [a-z]", texts), "a bad file is named, with the reason"
    assert re.search(r"R-data\.pdf, p\. \d+", answer), answer
    stored = list((server.data_dir / "uploads").rglob("R-data.pdf"))
    assert stored, "the upload was copied into the library's uploads folder under its own name"
    page.screenshot(path=str(screenshots / "pdf-upload-answer.png"))
    link = page.locator(MESSAGES).last.get_by_role("link", name=re.compile(r"open R-data\.pdf at p\. \d+")).first
    name = link.text_content()
    page_no = int(re.search(r"p\. (\d+)", name).group(1))
    assert re.search(rf"R-data\.pdf, p\. {page_no}\b", answer), "the PDF opens at a cited page"
    link.click()
    page.wait_for_function("n => document.querySelector('#side-view-title')?.textContent.includes(n)", arg=name)
    page.locator("#side-view-content canvas").first.wait_for(timeout=30_000)  # pdf.js drew a page
    time.sleep(1.5)
    page.screenshot(path=str(screenshots / "pdf-at-cited-page.png"))


def test_foundry_local_unreachable_then_answers(new_chat, server, screenshots, tmp_path, smollm2_dir):
    from foundry_support import Launcher  # tests/foundry: the real service in a child process

    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(page)
    choose(page, "engine", "Foundry Local")
    page.screenshot(path=str(screenshots / "settings-panel.png"))
    confirm_settings(page)
    page.get_by_text("Foundry Local is not reachable").wait_for(timeout=60_000)
    assert "make foundry" in "\n".join(assistant_texts(page))
    page.screenshot(path=str(screenshots / "foundry-unreachable.png"))
    # the chat keeps working on the previous engine
    answer, _ = ask(page, "Which file types can I add?", server)
    assert "In-process" in answer, answer

    launcher = Launcher(root=tmp_path, model_dir=smollm2_dir, port=server.foundry_port).start()
    try:
        open_settings(page)
        choose(page, "engine", "Foundry Local")
        confirm_settings(page)
        answer, _ = ask(page, "Which file types can I add?", server)
        assert "Foundry Local" in answer and launcher.model in answer, answer
        assert "Sources:" in answer, answer
        page.screenshot(path=str(screenshots / "foundry-answer.png"))
    finally:
        assert launcher.stop() == 0


def test_stop_mid_answer_then_next_question_works(new_chat, server, screenshots):
    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(page)
    page.locator("#max_new_tokens [role=slider], #max_new_tokens").last.focus()
    page.keyboard.press("End")  # 1024 tokens: long enough to stop mid-way
    choose(page, "mode", "off")
    confirm_settings(page)
    before = len(answers(page))
    ask(page, "Write a long, detailed essay about the history of libraries and how people found books.",
        wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        texts = assistant_texts(page)
        if texts and len(texts[-1]) > 40 and "Retrieval is off" not in texts[-1]:
            break
        time.sleep(0.1)
    page.click("#stop-button")
    time.sleep(1.0)
    stopped_len = len(assistant_texts(page)[-1])
    time.sleep(3.0)
    assert len(assistant_texts(page)[-1]) == stopped_len, "text kept streaming after stop"
    assert len(answers(page)) == before, "a stopped answer has no completion footer"
    page.screenshot(path=str(screenshots / "stopped.png"))
    answer, _ = ask(page, "Say hello.", server)
    assert FOOTER.search(answer)


def test_two_chats_keep_their_own_settings(new_chat, server, screenshots):
    a, b = new_chat(), new_chat()
    for page in (a, b):
        page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(a)
    choose(a, "mode", "off")
    confirm_settings(a)
    question = "How do I add documents to the library?"
    answer_a, _ = ask(a, question, server)
    answer_b, _ = ask(b, question, server)
    assert "Retrieval is off" in "\n".join(assistant_texts(a)) and "Sources:" not in answer_a, answer_a
    assert "Sources:" in answer_b and "Retrieval is off" not in "\n".join(assistant_texts(b)), answer_b
    open_settings(b)
    assert "hybrid" in b.locator("#mode").inner_text()
    b.keyboard.press("Escape")
    b.wait_for_selector("#confirm", state="detached")
    open_settings(a)
    assert "off" in a.locator("#mode").inner_text()
    a.keyboard.press("Escape")
    a.wait_for_selector("#confirm", state="detached")
    a.screenshot(path=str(screenshots / "chat-a-retrieval-off.png"))
    b.screenshot(path=str(screenshots / "chat-b-hybrid.png"))


def retrieval_inputs(page) -> list[str]:
    """What the Retrieval steps searched for (the step's input), oldest first."""
    steps = page.locator('[data-step-type="retrieval"]')
    out = []
    for i in range(steps.count()):
        steps.nth(i).get_by_role("button").first.click()  # open the step
        out.append(steps.nth(i).text_content() or "")
    return out


def test_quote_first_then_a_follow_up_retrieves_with_the_conversation(new_chat, server, screenshots):
    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    answer, partial = ask(page, "How do I add documents to the library?", server)
    assert "From your documents:" in answer, answer
    quote = answer.split("From your documents:", 1)[1]
    assert re.search(r"user-guide\.md", quote.split("TTFT")[0]), "the quote names the file it comes from"
    assert partial and partial[0] > 40, f"the quote showed before the model's first token: {partial[:3]}"
    follow_up, _ = ask(page, "And from the command line?", server)
    assert "From your documents:" in follow_up
    searched = retrieval_inputs(page)[-1]
    assert "How do I add documents to the library? And from the command line?" in searched, searched
    assert "index" in follow_up.lower(), "the follow-up found the command-line passage"
    page.screenshot(path=str(screenshots / "quote-and-follow-up.png"))


def test_an_unsupported_answer_is_left_out_in_one_line(new_chat, server, screenshots):
    """The tiny random-weight model writes words the documents never say: the check supports none of them, so the
    page shows the quote and the one line that the model's own answer is left out (not its marked sentences)."""
    from rag.answer.check import NOTHING_ADDED

    page = new_chat()
    page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
    open_settings(page)
    choose(page, "model", "Tiny random-weight test model")
    confirm_settings(page)
    answer, _ = ask(page, "How do I add documents to the library?", server)
    assert "From your documents:" in answer, answer
    assert NOTHING_ADDED.strip("*") in answer and "⚠️" not in answer, answer
    page.screenshot(path=str(screenshots / "unsupported-marked.png"))


def test_each_chat_can_search_only_its_own_files(new_chat, server, screenshots, tmp_path):
    """Two chats drop a file each on the same made-up topic; switched to "only this chat's files", each
    answers from its own file alone (and the Retrieval step says the scope)."""
    files = {}
    for name, colour in (("lamp-a.md", "crimson"), ("lamp-b.md", "turquoise")):
        f = tmp_path / name
        f.write_text(f"# The Vellbright lamp\n\nThe Vellbright lamp glows {colour} when its battery is full. "
                     f"Charge the Vellbright lamp for three hours before first use.\n")
        files[name] = (f, colour)
    pages = {}
    for name, (f, _) in files.items():
        page = new_chat()
        page.get_by_text("Welcome to Local RAG Chat").wait_for(timeout=240_000)
        page.set_input_files("#upload-button-input", [str(f)])
        page.get_by_text(name).first.wait_for()
        page.click("#chat-submit")  # the file alone, no question
        page.get_by_role("button", name="Search only this chat's files").click(timeout=120_000)
        page.get_by_text("now searches only its own 1 file(s)").wait_for()
        pages[name] = page
    for name, page in pages.items():
        own, other = files[name][1], next(c for n, (_, c) in files.items() if n != name)
        answer, _ = ask(page, "What colour does the Vellbright lamp glow when its battery is full?", server)
        quote = answer.split("From your documents:", 1)[-1].split("TTFT")[0]
        assert own in quote and other not in answer, answer
        assert name in answer and [n for n in files if n != name][0] not in answer, answer
        assert "only this chat's files (1)" in retrieval_inputs(page)[-1]
    pages["lamp-a.md"].screenshot(path=str(screenshots / "chat-scope.png"))
