"""No client text makes the server work super-linearly (issue 24, item 3).

Every parser that reads text a client sends (the /v1 history clean-up, citations and the sentence check,
the answer guard, evidence, follow-up queries, sentence splitting, prompt sanitising, the routing rules'
code detection, the BM25 tokenizer) is fed 1 MiB of each hostile shape and must finish within
``LIMIT`` seconds: a linear pass takes well under one, while the patterns these replaced needed hours
(or, for the Sources block, longer than the universe has left) on the same input. Then a real server is
sent the attacks that froze it: a /v1 history with "**Sources:**" and "[1] " repeated, and an answer to
/browser/api/check with a long run of spaces, and must answer them and still answer /v1/models at once.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from rag.answer import check, evidence, followup, guard
from rag.answer.check import NOTHING_ADDED, Checked
from rag.api import chat
from rag.api.schemas import ChatRequest
from rag import prompt, text as text_mod
from rag.routing import rules
from rag.schema import Chunk, Hit
from rag.search.lexical import tokenize

from conftest import REPO_ROOT, start
import chainlit_server

pytestmark = [pytest.mark.security]

MIB = 1 << 20
LIMIT = 10.0  # seconds for one call on 1 MiB (measured: under 1 s, on a busy machine 2 s; the old patterns: hours)


def mib(unit: str, head: str = "", tail: str = "x") -> str:
    """``unit`` repeated to 1 MiB, between ``head`` and ``tail`` (a tail that spoils the match is what
    makes a backtracking pattern try every split)."""
    return head + unit * ((MIB - len(head) - len(tail)) // len(unit)) + tail


# name -> 1 MiB of it; each shape once broke (or could break) one of the patterns
SHAPES = {
    "sources": mib("[1] ", "**Sources:**\n", "\nx"),
    "citations": mib("[1] "),
    "spaces": mib(" ", "word", "last two"),
    "tabs and spaces": mib(" \t", "a"),
    "newlines": mib("\n", "a", "b"),
    "blank lines with spaces": mib("\n \n", "a"),
    "calls": mib("a("),
    "dotted name": mib("a.", "", "(x"),
    "bold": mib("**"),
    "italic note": mib("*a", "*"),
    "backticks": mib("`"),
    "open backtick": mib("a", " `"),
    "fences": mib("    ```\n"),
    "brackets": mib("["),
    "nested brackets": "[" * (MIB // 2) + "]" * (MIB // 2),
    "nested parens": "(" * (MIB // 2) + ")" * (MIB // 2),
    "open citation list": mib("1, ", "[", ""),
    "citations after a stop": mib(".[1]", "", "x"),
    "closing quotes after a stop": mib('.)"', "", "x"),
    "unicode": mib("é日本\u00a0\u2028"),
    "nbsp": mib("\u00a0", "a", "b c"),
    "stops": mib(". "),
    "stops without space": mib("a."),
    "list items": mib("\n1. "),
    "bullets": mib("\n- "),
    "indented code": mib("\n    for x in y"),
    "select": mib("SELECT "),
    "imports": mib("\n  from a "),
    "capitalised words": mib("x Ab "),
    "table row cells": mib("Name: x | "),
    "table rows": mib("A: b | C: d\n"),
    "a row of names without values": mib("Aa: | ", "A: b | "),
    "names with dots": mib("a", "A", ".x"),
    "identifiers": mib("a_"),
    "paths": mib("/a"),
    "versions": mib("1."),
    "camel case": mib("Aa"),
    "passage headers": mib("\npassage\n", "", "[1]"),
    "special tokens": mib("<|"),
    "control characters": mib("\x00\x1f"),
    "words": mib("alpha beta gamma delta "),
}


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def within(fn, *args, **kwargs) -> None:
    seconds = timed(fn, *args, **kwargs)
    assert seconds < LIMIT, f"{getattr(fn, '__name__', fn)} took {seconds:.1f} s on 1 MiB (limit {LIMIT} s)"


@pytest.fixture(scope="module")
def embedder():
    from rag.embedder import Embedder

    return Embedder.get()


def hits() -> list[Hit]:
    text = "The kettle boils water. Green tea is brewed at 80 degrees for two minutes [1]."
    return [Hit(Chunk(1, text, "/docs/tea.md"), 0.7, 1, {}), Hit(Chunk(2, text, "/docs/tea2.md"), 0.6, 2, {})]


def history_request(text: str) -> ChatRequest:
    return ChatRequest.model_validate({"model": "x", "messages": [
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": text},
        {"role": "user", "content": "and then?"}]})


# ------------------------------------------------------------------------------ each parser, directly
@pytest.mark.parametrize("shape", SHAPES)
def test_history_clean_up_is_linear(shape):
    within(chat._without_decorations, SHAPES[shape])
    within(chat.conversation, history_request(SHAPES[shape]))


def test_the_sources_block_is_still_taken_out_of_the_history():
    answer = "From your documents:\n> tea\n\nIt is brewed hot [1].\n\n**Sources:**\n[1] tea.md\n[2] b.md\n\n*a note*"
    assert chat._without_decorations(answer) == "> tea\n\nIt is brewed hot [1]."
    assert chat._without_decorations("**Sources:**\n" + "[1] " * 30 + "\nx") == "**Sources:**\n" + "[1] " * 30 + "\nx"


def test_stop_strings_are_short_and_cut_a_stream_in_linear_time():
    """Each streamed piece is searched for every stop string and the longest is held back: a stop string
    of a megabyte made every piece cost a megabyte. Longer than MAX_STOP_CHARS is refused (400)."""
    from rag.api import render
    from rag.api.errors import APIError

    request = history_request("x")
    request.stop = ["]" * (chat.MAX_STOP_CHARS + 1)]
    with pytest.raises(APIError) as refused:
        chat.stops(request)
    assert refused.value.status == 400 and "at most 1000 characters" in str(refused.value)
    request.stop = ["[1" * (chat.MAX_STOP_CHARS // 2)] * chat.MAX_STOPS
    cutter, text = render.StopCutter(chat.stops(request)), SHAPES["citations"]
    t0 = time.perf_counter()
    for i in range(0, len(text), 64):
        cutter.feed(text[i:i + 64])
    assert time.perf_counter() - t0 < LIMIT and not cutter.hit


@pytest.mark.parametrize("shape", SHAPES)
def test_the_guard_is_linear(shape):
    text = SHAPES[shape]
    for cut in (False, True):
        within(guard.finish, text, cut=cut)
    within(guard.tidy_fences, text)
    within(guard.end_at_sentence, text)


def test_the_guard_drops_the_last_word_of_a_cut_answer():
    assert guard.finish("It is brewed at eighty degr", cut=True) == "It is brewed at eighty …"
    assert guard.finish("word" + " " * 16000 + "last two", cut=True) == "word" + " " * 16000 + "last …"
    assert guard.without_last_word("a b\t\n c") == "a b"


@pytest.mark.parametrize("shape", ["spaces", "citations", "stops", "words", "bullets", "unicode"])
def test_the_loop_guard_reads_a_streamed_answer_in_linear_time(shape):
    """The guard sees the model's text piece by piece on the event loop; each piece must cost its own size
    (it read the whole text again for each piece). 256 KiB, far more than a model's context, in 4,096 pieces."""
    text, g = SHAPES[shape][:MIB // 4], guard.LoopGuard()
    t0 = time.perf_counter()
    for i in range(0, len(text), 64):
        if g.feed(text[i:i + 64]):
            break
    assert time.perf_counter() - t0 < LIMIT


@pytest.mark.parametrize("shape", SHAPES)
def test_citations_and_identifiers_are_read_in_linear_time(shape):
    text = SHAPES[shape]
    within(check.citation_numbers, text)
    within(check._CITE.sub, "", text)
    within(check.identifiers, text)
    within(check._repeats, text, [set(text[:1000].split())])


def test_citations_are_still_read():
    assert check.citation_numbers("It boils [1]. It is green [2, 3] and hot [4;5].") == [1, 2, 3, 4, 5]
    assert check._CITE.sub("", "hot" + " " * 5000 + "[1] and   [2]") == "hot and"


@pytest.mark.parametrize("shape", ["spaces", "citations", "open citation list", "brackets", "unicode", "backticks"])
def test_the_sentence_check_is_linear(embedder, shape):
    """The whole check with the real embedder on shapes that make few sentences (each one judged is embedded:
    linear, but a minute for a megabyte of prose), and the rendering of many sentences."""
    within(check.check, embedder, SHAPES[shape], hits(), "How is tea brewed?", ["The kettle boils water."])
    many = [Checked("Tea is green.", i % 2 == 0, gap=" ") for i in range(MIB // 16)]
    within(check.render, many)


@pytest.mark.parametrize("shape", SHAPES)
def test_sentence_splitting_is_linear(shape):
    text = SHAPES[shape]
    within(lambda: list(text_mod.sentence_spans(text)))
    within(evidence.split, text)


@pytest.mark.parametrize("shape", SHAPES)
def test_evidence_is_linear(shape):
    text = SHAPES[shape]
    within(evidence.names, text)
    within(evidence.unknown_names, text, lambda t: tokenize(t))
    within(evidence.term_coverage, text, [text[:2000], "tea"])


def test_names_are_still_found():
    assert evidence.names("Does it run on Docker or in RStudio? Windows too") == ["Docker", "RStudio"]
    assert evidence.names("x" + " " * 3000 + "Docker") == ["Docker"]


@pytest.mark.parametrize("shape", SHAPES)
def test_follow_up_queries_are_linear(shape):
    text = SHAPES[shape]
    history = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
    for method in followup.METHODS:
        within(followup.standalone_query, text, history, method)


@pytest.mark.parametrize("shape", SHAPES)
def test_prompt_sanitising_is_linear(shape):
    text = SHAPES[shape]
    within(prompt.clean_passage, text)
    within(prompt.history_messages, [{"role": "user", "content": text}] * 20)


def test_fake_passage_headers_are_still_neutralised():
    assert prompt.clean_passage("a\n\n\n  Passage [2] x\n[3] y") == "a\n\n\n  Passage (2) x\n(3) y"


@pytest.mark.parametrize("shape", SHAPES)
def test_code_detection_is_linear(shape):
    within(rules.looks_like_code, SHAPES[shape])


def test_code_is_still_detected():
    assert rules.looks_like_code("Why does np.array(x) fail?")
    assert rules.looks_like_code("1.2.foo(x) fails") and not rules.looks_like_code("see file(s) 1.2(x)")
    assert rules.looks_like_code("\n\n  from os import path")
    assert rules.looks_like_code("SELECT name FROM users") and not rules.looks_like_code("FROM x SELECT y")


@pytest.mark.parametrize("shape", SHAPES)
def test_tokenizing_is_linear(shape):
    within(tokenize, SHAPES[shape])


# ------------------------------------------------------------------------------ a real server
JSON = "application/json"
TEA = ("Zorblax tea is brewed at 73 degrees for four minutes. It is grown on the slopes of Mount Quellis. "
       "The leaves are dried in the shade for nine days before they are rolled.")
QUESTION = "At what temperature is Zorblax tea brewed?"


def _headers(target) -> dict:
    return {"Content-Type": JSON, "Origin": target.url}


# A stuck event loop would hold /v1/models for the whole parse (the quadratic ones took minutes); an idle
# server answers it in milliseconds, one in a busy suite took 2.1 s in CI.
RESPONSIVE_S = 5


def _models_quickly(target) -> float:
    t0 = time.perf_counter()
    r = httpx.get(target.url + "/v1/models", headers={"Origin": target.url}, timeout=30)
    assert r.status_code == 200, r.text
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def tea_server(tmp_path_factory):
    """A server of the default mode whose library holds a document that answers QUESTION (the check of an
    answer reaches the guard only when the documents answer the question)."""
    root = tmp_path_factory.mktemp("sec-linear")
    docs = root / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text(TEA)
    done = subprocess.run([sys.executable, "-m", "rag", "index", "--quiet", str(docs)], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=chainlit_server.base_env(root / "data"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    target = start(root, LRC_WARMUP="0")
    yield target
    chainlit_server.stop(target.proc)


@pytest.mark.slow
def test_a_hostile_history_is_answered_and_the_server_stays_responsive(open_server):
    """24 repeats of "[1] " took 3.8 s on the event loop and each one more doubled it; 1 MiB of them."""
    target = open_server
    history = "**Sources:**\n" + "[1] " * ((MIB - 100_000) // 4) + "\nx"
    model = httpx.get(target.url + "/v1/models", headers={"Origin": target.url}, timeout=30).json()["data"][0]["id"]
    body = {"model": model, "messages": [{"role": "user", "content": "What is Zorblax?"},
                                               {"role": "assistant", "content": history},
                                               {"role": "user", "content": "And then?"}]}
    pings: list[float] = []
    stop = threading.Event()

    def ping():  # the event loop must keep answering while the request is handled
        while not stop.is_set():
            pings.append(_models_quickly(target))
            time.sleep(0.2)

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        t0 = time.perf_counter()
        r = httpx.post(target.url + "/v1/chat/completions", json=body, headers=_headers(target), timeout=120)
        seconds = time.perf_counter() - t0
    finally:
        stop.set()
        pinger.join()
    assert r.status_code == 200, r.text
    assert seconds < 60, f"the request took {seconds:.1f} s"
    assert pings and max(pings) < RESPONSIVE_S, f"/v1/models waited {max(pings):.1f} s while the history was read"
    assert _models_quickly(target) < RESPONSIVE_S


@pytest.mark.slow
def test_a_hostile_answer_to_check_is_answered_and_the_server_stays_responsive(tea_server):
    """16,000 spaces took 2.1 s on the event loop, quadratic: 98,000 of them some two minutes; now a moment.
    A longer answer than the page's model can write is refused at once."""
    target = tea_server
    url = target.url + "/browser/api/check"
    said = "Drink it while it is still warm"  # not the quote, which the check would leave out as a repeat
    answer = said + " " * 98_000 + "from a small cu"
    for cut in (True, False):
        t0 = time.perf_counter()
        r = httpx.post(url, json={"question": QUESTION, "answer": answer, "cut": cut}, headers=_headers(target),
                       timeout=300)
        seconds = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        # the sentence itself, or (the passages do not hold it) the one line that says the model added nothing
        assert r.json()["text"].startswith((said, NOTHING_ADDED)) and r.json()["judged"] == 1, r.json()
        assert seconds < 60, f"the check took {seconds:.1f} s (cut={cut})"
        assert _models_quickly(target) < RESPONSIVE_S
    t0 = time.perf_counter()
    r = httpx.post(url, json={"question": QUESTION, "answer": "a" + " " * (MIB - 200) + "b c", "cut": True},
                   headers=_headers(target), timeout=60)
    assert r.status_code == 400 and "longer than 100,000 characters" in r.json()["error"]["message"], r.text
    assert time.perf_counter() - t0 < 5
    assert _models_quickly(target) < RESPONSIVE_S
