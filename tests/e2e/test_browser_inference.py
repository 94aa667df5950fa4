"""The in-browser page (/browser, rag.browser): headless Debian chromium runs the model with ONNX Runtime
Web's WebAssembly backend (no GPU here), served entirely by the app.

- parity: the page's first 16 greedy tokens equal onnxruntime-genai's (the in-process engine's runtime)
  on the same model folder and the same prompt ids; the prompt ids are the in-process tokenizer's
  encoding of the pipeline's messages; the page's text equals the tokenizer's decoding
- privacy: every request of the chat and the page goes to the app's own origin
- the stop button ends an answer
- no model build: a readable message on the page, the chat still works
"""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import chainlit_server
import pytest
from conftest import launch  # tests/e2e/conftest.py: import at collection, when "conftest" is this folder's

from rag.answer.check import NOTHING_ADDED
from rag.browser import assets

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARITY_TOKENS = 16
QUESTION = "How do I add documents to the library?"


def require_browser_setup() -> None:
    """Fail (never skip) naming what is missing."""
    problem = assets.runtime_problem()
    if problem:
        pytest.fail(f"{problem.message} {problem.hint}")
    problem = assets.model_problem()
    if problem:
        pytest.fail(f"{problem.message} Run `make browser-setup` (it builds the browser model).")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    require_browser_setup()
    # one passage per question: the prompt is a third as long (about 320 tokens, not 780), and reading it is
    # most of each answer's time in WebAssembly; what is compared (the prompt ids, the tokens) is the same
    srv = launch(tmp_path_factory.mktemp("browser-server"), LRC_TOP_K="1")
    yield srv
    chainlit_server.stop(srv.proc)


def _state(page) -> str:
    return page.locator("#state").get_attribute("data-state")


def wait_state(page, states: tuple[str, ...], timeout: float = 300_000) -> str:
    page.wait_for_function(f"{json.dumps(list(states))}.includes(document.querySelector('#state').dataset.state)",
                           timeout=timeout)
    return _state(page)


def open_page(browser, srv, requests: list[str] | None = None, chat_first: bool = False):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    if requests is not None:
        ctx.on("request", lambda r: requests.append(r.url))
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    if chat_first:  # the first chat indexes the bundled guide: the page's questions then find passages
        page.goto(srv.url + "/")
        page.wait_for_selector("text=Welcome to Local RAG Chat", timeout=180_000)
    page.goto(srv.url + "/browser")
    return ctx, page


@pytest.fixture(scope="module")
def ready_page(app_server, browser):
    """One /browser page for the module's answers (loading the model in WebAssembly is most of a test's time):
    opened after the first chat indexed the guide, with every request it makes recorded; (page, requests)."""
    requests: list[str] = []
    ctx, page = open_page(browser, app_server, requests, chat_first=True)
    try:
        state = wait_state(page, ("ready", "error"))
        assert state == "ready", page.inner_text("#problem")
        yield page, requests
    finally:
        ctx.close()


def ask(page, question: str, max_tokens: int | None = None, penalty: float | None = None) -> None:
    page.fill("#question", question)
    page.fill("#max-tokens", "" if max_tokens is None else str(max_tokens))
    page.fill("#penalty", "" if penalty is None else str(penalty))
    page.click("#ask-button")


def og_greedy(folder: str, ids: list[int], n: int, penalty: float) -> list[int]:
    import onnxruntime_genai as og

    model = og.Model(folder)
    params = og.GeneratorParams(model)
    options = {"max_length": len(ids) + n, "do_sample": False}
    if penalty != 1.0:
        options["repetition_penalty"] = penalty
    params.set_search_options(**options)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    while not gen.is_done() and len(out) < n:
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return out


def test_the_page_generates_what_the_in_process_engine_generates(app_server, ready_page, screenshots):
    import onnxruntime_genai as og

    page, requests = ready_page
    assert "WebAssembly" in page.inner_text("#backend")
    status = page.evaluate("window.lrc.status")
    ask(page, QUESTION, max_tokens=PARITY_TOKENS, penalty=1)
    assert wait_state(page, ("done", "error")) == "done", page.inner_text("#problem")
    result = page.evaluate("window.lrc.result")
    context = page.evaluate("window.lrc.context")
    streamed = page.evaluate("window.lrc.tokens")
    shown = page.inner_text("#answer")
    stats = page.inner_text("#stats")
    checked = page.evaluate("window.lrc.checked")
    quoted = page.inner_text("#quote") if page.is_visible("#quote") else ""
    page.screenshot(path=str(screenshots / "browser-page.png"), full_page=True)

    folder = str(assets.model_dir())
    assert status["model"]["folder"] == assets.model_dir().name
    # the prompt: the pipeline's messages (passages from the library), encoded by the in-process tokenizer
    assert context["passages"], "the question found no passages: the guide was not indexed"
    # the quote, as the chat shows it before the model: each sentence with its file (and page), on the page
    assert context["quote"], context
    assert quoted.startswith("From your documents"), quoted
    for q in context["quote"]:
        assert q["text"].replace("**", "") in quoted and f"— {q['citation']}" in quoted
        assert q["citation"].startswith("user-guide.md")
    assert context["messages"][0]["role"] == "system" and "Passage [1]" in context["messages"][0]["content"]
    model = og.Model(folder)
    tokenizer = og.Tokenizer(model)
    template = tokenizer.apply_chat_template(json.dumps(context["messages"]), add_generation_prompt=True)
    assert [int(t) for t in tokenizer.encode(template)] == context["input_ids"]
    # the tokens: greedy, no penalty, 16 of them, equal to onnxruntime-genai's
    reference = og_greedy(folder, context["input_ids"], PARITY_TOKENS, 1.0)
    assert result["ids"] == reference, f"page {result['ids']} != in-process {reference}"
    assert streamed == result["ids"]  # each token was shown as it came
    assert result["text"].strip() == tokenizer.decode(reference).strip()
    # then the chat's sentence check: what the page shows is the checked answer, each unsupported sentence marked
    assert checked is not None and checked["judged"] >= 0, checked
    # (the page shows a line in *italics* without its asterisks, as the chat renders it)
    assert shown.strip() == re.sub(r"^\*([^*\n]+)\*$", r"\1", checked["text"], flags=re.M).strip()
    # (an answer none of whose sentences is supported reads as one line saying so: rag.answer.check.render)
    for sentence in [] if checked["text"].startswith(NOTHING_ADDED) else checked["unsupported"]:
        assert sentence in shown and "⚠️" in shown.split(sentence, 1)[1][:4], (sentence, shown)
    assert "first token after" in stats and "tokens/s" in stats, stats
    assert result["ttft"] > 0 and result["decodeTps"] > 0
    # nothing left this machine: the chat and the page only talked to the app
    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in requests if not u.startswith(("data:", "blob:"))}
    assert origins == {app_server.url}, f"requests went to {origins}"
    assert any("/browser/model/model.onnx.data" in u for u in requests)
    assert any("/browser/ort/" in u and u.endswith(".wasm") for u in requests)


def test_the_page_stops_an_answer_that_repeats_itself(ready_page, screenshots):
    """Greedy decoding without a repetition penalty loops on this question (a list item repeats an earlier
    one's sentence after about 100 tokens: a question that loops sooner costs less WebAssembly time): the page's
    guard stops it as the chat's would, and the kept answer is checked like the chat's."""
    from rag.answer_eval import repeats_a_sentence

    page, _ = ready_page
    ask(page, "What can I set in the settings panel?", max_tokens=300, penalty=1)
    assert wait_state(page, ("done", "error")) == "done", page.inner_text("#problem")
    result = page.evaluate("window.lrc.result")
    checked = page.evaluate("window.lrc.checked")
    shown = page.inner_text("#answer")
    stats = page.inner_text("#stats")
    page.screenshot(path=str(screenshots / "browser-loop-stopped.png"), full_page=True)
    assert result["looped"], f"the greedy answer no longer loops (did the guide change?): {shown[-300:]!r}"
    assert result["reason"] == "stopped" and len(result["ids"]) < 300, result
    assert shown.endswith("[The model started repeating itself and was stopped.]"), shown
    kept = shown.rsplit("[The model", 1)[0]
    assert kept.strip() and not repeats_a_sentence(kept), kept
    assert "stopped: the model started repeating itself" in stats, stats
    # what it kept was checked like the chat's answers: its invented sentences are unsupported (all of them: the
    # page shows the one line saying the model's answer is left out)
    assert checked["unsupported"], checked
    assert NOTHING_ADDED.strip("*") in kept or "⚠️" in kept and "not found in your documents" in kept, kept


def test_stop_ends_an_answer(ready_page):
    page, _ = ready_page
    ask(page, QUESTION, max_tokens=400)
    page.wait_for_function("window.lrc.tokens.length >= 2", timeout=300_000)
    page.click("#stop-button")
    assert wait_state(page, ("done", "error")) == "done"
    result = page.evaluate("window.lrc.result")
    assert result["reason"] == "stopped" and 2 <= len(result["ids"]) < 400, result
    assert page.inner_text("#state") == "stopped"
    assert not page.is_enabled("#stop-button") and page.is_enabled("#ask-button")


def test_without_a_model_build_the_page_says_why(tmp_path, browser):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    srv = launch(tmp_path, LRC_CACHE_DIR=str(empty), LRC_WARMUP="0")
    try:
        requests: list[str] = []
        ctx, page = open_page(browser, srv, requests)
        try:
            assert wait_state(page, ("ready", "error"), timeout=60_000) == "error"
            text = page.inner_text("#problem")
            assert "not built" in text and "python -m rag models pull smollm2-web" in text, text
            assert page.inner_text("#model-state") == "not built"
            assert not page.is_enabled("#ask-button")
            assert not any("/browser/model/" in u for u in requests)
            # the chat is unaffected
            page.goto(srv.url + "/")
            page.wait_for_selector("#chat-input", timeout=120_000)
        finally:
            ctx.close()
    finally:
        chainlit_server.stop(srv.proc)
