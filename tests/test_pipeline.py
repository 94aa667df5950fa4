"""rag.pipeline with real parts: a real Library (MiniLM + FAISS + BM25) on a tiny temp corpus and the
real in-process engine (SmolLM2-135M int8; the tiny random-weight build where only plumbing matters)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import loop_ticks  # tests/ is on sys.path
from rag import pipeline as pl
from rag.config import REPO_ROOT
from rag.search import MIN_DENSE_SCORE

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def library(zorblax_library):
    return zorblax_library


def opts(**kw) -> pl.Options:
    base = dict(engine="onnx", model="smollm2", top_k=2, mode="hybrid", temperature=0.0, max_new_tokens=32)
    base.update(kw)
    return pl.Options(**base)


async def collect(question, options, lib, history=None, control=None) -> list:
    return [ev async for ev in pl.answer(question, history or [], options, control, lib=lib)]


def kinds(events) -> list[str]:
    out = []
    for ev in events:
        name = type(ev).__name__
        if not out or out[-1] != name or name != "Token":
            out.append(name)
    return out


async def test_events_in_order_and_sources_name_the_right_file(library, smollm2_dir):
    events = await collect("How do I calibrate a Zorblax widget?", opts(), library)
    seq = [k for k in kinds(events) if k != "Notice"]  # a notice (e.g. the length limit) may come after tokens
    assert seq == ["Retrieved", "Quoted", "Token", "Revised", "Sources", "Done"], kinds(events)
    retrieved, sources, done = events[0], events[-2], events[-1]
    quoted = next(e for e in events if isinstance(e, pl.Quoted))
    assert any("calibrat" in text and hit.chunk.name == "calibration.md" for text, hit in quoted.quotes), quoted
    revised = next(e for e in events if isinstance(e, pl.Revised))
    assert retrieved.hits[0].chunk.name == "calibration.md"
    assert retrieved.hits[0].scores["dense"] > MIN_DENSE_SCORE
    assert sources.used[0].chunk.name == "calibration.md"
    assert all(h in sources.used for h in sources.cited)
    tokens = "".join(e.text for e in events if isinstance(e, pl.Token))
    assert tokens.strip() and revised.text.strip()
    assert done.text.startswith("> ") and done.text.endswith(revised.text), "what the user reads: quote, then the checked answer"
    assert done.engine == "onnx" and "smollm2" in done.model
    assert done.usage.completion_tokens > 0 and done.usage.time_to_first_token is not None
    assert 0 < done.usage.prompt_tokens <= 8192 - 32
    assert set(done.timings) >= {"retrieval", "prompt", "generation", "total"}


async def test_pdf_sources_carry_their_page(library, smollm2_dir):
    events = await collect("Does Local RAG Chat send my documents to the internet?", opts(max_new_tokens=8), library)
    used = next(e for e in events if isinstance(e, pl.Sources)).used
    assert any(h.chunk.name == "faq.pdf" and h.chunk.page == 1 for h in used), [h.chunk.citation() for h in used]


async def test_sources_without_pages_name_their_section(library):
    """A Markdown (HTML, Word, text) file has no pages: its passages are cited with their section, so ten
    passages of one manual do not all read "manual.html"; a PDF's keep their page."""
    from rag.schema import Chunk

    events = await collect("How do I calibrate a Zorblax widget?", opts(style="quote", top_k=4), library)
    quoted = next(e for e in events if isinstance(e, pl.Quoted))
    assert "(calibration.md § Zorblax widget calibration)" in quoted.text, quoted.text
    assert Chunk(0, "t", "/d/faq.pdf", page=2, heading="Privacy").citation() == "faq.pdf, p. 2"
    assert Chunk(0, "t", "/d/notes.txt").citation() == "notes.txt"
    long = Chunk(0, "t", "/d/m.html", heading="7.4.2.3 The interface for authenticated encryption with associated "
                                              "data using the Galois counter mode").citation()
    assert long == "m.html § 7.4.2.3 The interface for authenticated encryption with…", long


async def test_nothing_relevant_says_so_and_does_not_generate(library):
    events = await collect("What is the capital of France?", opts(), library)
    assert kinds(events) == ["Retrieved", "NothingFound", "Sources"], kinds(events)
    nothing = events[1]
    assert nothing.reason == "irrelevant" and not nothing.answering
    assert "nothing" in nothing.message.lower()
    assert not any(isinstance(e, pl.Token) for e in events)


async def test_empty_library_answers_without_passages_clearly_labelled(tmp_path, tiny_model_dir):
    from rag.library import Library

    events = await collect("How do I calibrate a Zorblax widget?", opts(model="tiny", max_new_tokens=8),
                           Library(tmp_path / "empty"))
    assert kinds(events)[:2] == ["Retrieved", "NothingFound"] and kinds(events)[-2:] == ["Sources", "Done"]
    assert events[1].reason == "empty" and events[1].answering and "empty" in events[1].message
    assert events[-2].used == []


async def test_a_broken_reranker_setting_is_named_and_the_answer_still_uses_the_documents(library, tiny_model_dir):
    from rag.library import Library

    lib = Library(library.index_dir, reranker=str(library.index_dir / "no-such-cross-encoder"))
    events = await collect("How do I calibrate a Zorblax widget?", opts(model="tiny", max_new_tokens=8), lib)
    notes = [ev.text for ev in events if isinstance(ev, pl.Notice)]
    assert any("LRC_RERANKER" in n and "without the re-ranker" in n for n in notes), notes
    retrieved = next(ev for ev in events if isinstance(ev, pl.Retrieved))
    assert retrieved.hits and retrieved.hits[0].chunk.name == "calibration.md"
    assert isinstance(events[-1], pl.Done) and events[-2].used


async def test_mode_off_skips_retrieval(library, tiny_model_dir):
    events = await collect("How do I calibrate a Zorblax widget?", opts(model="tiny", mode="off", max_new_tokens=8),
                           library)
    assert events[0].mode == "off" and events[0].hits == []
    assert events[1].reason == "off" and "does not use your documents" in events[1].message
    assert isinstance(events[-1], pl.Done) and events[-2].used == []


async def test_prompt_too_long_from_the_engine_shrinks_and_retries_once(library, tiny_model_dir):
    # The pipeline is told the context is 40k tokens; the real model holds 8192. A long history makes
    # the first prompt overflow for real; the engine's PromptTooLong makes the pipeline rebuild once.
    history = []
    for t in range(4):
        history += [{"role": "user", "content": f"question {t} " + "calibration widget lamp " * 400},
                    {"role": "assistant", "content": f"answer {t} " + "turn the dial to forty two " * 400}]
    events = await collect("How do I calibrate a Zorblax widget?",
                           opts(model="tiny", context_length=40_000, max_new_tokens=16), library, history)
    notices = [e.text for e in events if isinstance(e, pl.Notice)]
    assert any("too long" in n for n in notices), notices
    assert not any(isinstance(e, pl.Failed) for e in events), [e for e in events if isinstance(e, pl.Failed)]
    done = events[-1]
    assert isinstance(done, pl.Done)
    assert done.usage.prompt_tokens + 16 <= 8192 and done.usage.prompt_tokens > 1000
    assert events[-2].used, "the retry keeps the best passages (history goes first)"


async def test_engine_errors_become_failed_events(library):
    events = await collect("How do I calibrate a Zorblax widget?", opts(model="no-such-model"), library)
    failed = events[-1]
    assert isinstance(failed, pl.Failed), events
    assert "no-such-model" in failed.text and failed.category is pl.ErrorCategory.NOT_FOUND


async def test_cancel_stops_the_answer_and_the_next_one_works(library, smollm2_dir):
    control = pl.Control()
    got = []
    async for ev in pl.answer("How do I calibrate a Zorblax widget?", [], opts(max_new_tokens=300, mode="off"),
                              control, lib=library):
        got.append(ev)
        if sum(isinstance(e, pl.Token) for e in got) == 3:
            await control.cancel()
    tokens = [e for e in got if isinstance(e, pl.Token)]
    assert 3 <= len(tokens) <= 6, len(tokens)
    done = got[-1]
    assert isinstance(done, pl.Done) and done.usage.finish_reason == "cancelled"
    events = await collect("How do I calibrate a Zorblax widget?", opts(max_new_tokens=8), library)
    assert isinstance(events[-1], pl.Done) and events[-1].usage.finish_reason in ("stop", "length")


async def test_the_event_loop_keeps_running_during_an_answer(library, smollm2_dir):
    gaps = []  # less the time the OS kept the loop's thread waiting for a CPU (tests/loop_ticks.py)
    tick = asyncio.create_task(loop_ticks.tick(gaps, 0.01))
    try:
        await collect("How often must a Zorblax widget be calibrated?", opts(max_new_tokens=24), library)
    finally:
        tick.cancel()
    stalls = [g - 0.01 for g in gaps]
    assert len(stalls) > 20
    assert max(stalls) < 0.3, f"the loop stalled for {max(stalls):.2f}s"


async def test_ingest_uploads_keeps_names_and_reports_bad_files(tmp_path, zorblax_corpus):
    from rag.library import Library

    lib = Library(tmp_path / "index")
    uploads = tmp_path / "uploads"
    tmp_a, tmp_b = tmp_path / "a1b2c3", tmp_path / "d4e5f6"  # Chainlit's temp names
    tmp_a.write_text((zorblax_corpus / "tea.txt").read_text())
    tmp_b.write_bytes(b"%PDF-1.4 broken")
    events = [ev async for ev in pl.ingest_uploads([(tmp_a, "tea notes.txt"), (tmp_b, "../evil/broken.pdf")],
                                                   lib=lib, uploads_dir=uploads)]
    assert any(isinstance(e, pl.Progress) for e in events)
    report = events[-1].report
    assert [Path(p).name for p in report.added] == ["tea notes.txt"]
    assert [Path(f).name for f, _ in report.failed] == ["broken.pdf"] and report.failed[0][1]
    assert all(uploads in Path(p).parents for p in report.added), "copies live in the uploads folder"
    # the same content again is the same file (unchanged); other content under the same name never clobbers
    again = [ev async for ev in pl.ingest_uploads([(tmp_a, "tea notes.txt")], lib=lib, uploads_dir=uploads)]
    assert [Path(p).name for p in again[-1].report.unchanged] == ["tea notes.txt"]
    tmp_a.write_text((zorblax_corpus / "calibration.md").read_text())
    third = [ev async for ev in pl.ingest_uploads([(tmp_a, "tea notes.txt")], lib=lib, uploads_dir=uploads)]
    assert len(third[-1].report.added) == 1 and len(list(uploads.rglob("tea notes.txt"))) == 2
    hits = await asyncio.to_thread(lib.search, "Quuxian tea ceremony", 1)
    assert hits[0].chunk.name == "tea notes.txt"


def test_cli_ask_streams_then_prints_sources_and_timings(tmp_path, zorblax_corpus, tiny_model_dir):
    import os
    import subprocess
    import sys

    from rag.library import Library

    data = tmp_path / "data"
    Library(data / "index").ingest([zorblax_corpus / "calibration.md", zorblax_corpus / "tea.txt"])
    env = dict(os.environ, LRC_DATA_DIR=str(data), PYTHONPATH=str(REPO_ROOT))
    run = subprocess.run([sys.executable, "-m", "rag", "ask", "How do I calibrate a Zorblax widget?",
                          "--model", "tiny", "-k", "1", "--max-tokens", "8", "--show-passages"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Sources:" in run.stdout and "[1] calibration.md" in run.stdout, run.stdout
    assert "#1 calibration.md" in run.stderr, "--show-passages lists the retrieved passages"
    assert "TTFT" in run.stderr and "tok/s" in run.stderr, run.stderr[-1000:]
    nothing = subprocess.run([sys.executable, "-m", "rag", "ask", "What is the capital of France?", "--model", "tiny"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert nothing.returncode == 0 and "found nothing" in nothing.stdout, nothing.stdout + nothing.stderr[-500:]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_a_scope_searches_only_those_files_in_every_mode(library, mode):
    """A chat's scope (the files dropped into it) limits retrieval to them, whatever the mode."""
    tea = next(p for p in library.files() if p.path.endswith("tea.txt")).path
    whole = library.retrieve("How do I calibrate a Zorblax widget?", 3, mode)
    assert whole.hits and whole.hits[0].chunk.name == "calibration.md"
    scoped = library.retrieve("How do I calibrate a Zorblax widget?", 3, mode, scope=[tea])
    assert all(h.chunk.name == "tea.txt" for h in scoped.hits), [h.chunk.name for h in scoped.hits]
    if mode != "lexical":  # BM25 finds no calibration term in the tea file: nothing, rightly
        assert scoped.hits
    own = library.retrieve("What is steeped for four minutes?", 3, mode, scope=[tea])
    assert own.hits and own.hits[0].chunk.name == "tea.txt"
    assert library.retrieve("tea", 3, mode, scope=[]).hits == []


async def test_the_retrieved_event_says_the_scope(library, tiny_model_dir):
    tea = next(p for p in library.files() if p.path.endswith("tea.txt")).path
    events = await collect("What do guests drink in silence?", opts(model="tiny", max_new_tokens=8, scope=(tea,)),
                           library)
    retrieved = events[0]
    assert retrieved.scope == (tea,) and {h.chunk.name for h in retrieved.hits} == {"tea.txt"}


async def test_unchosen_limit_is_the_models_own_length_without_a_notice(library, smollm2_dir):
    """No limit chosen (0, the default): SmolLM2 writes its own short length (rag.prompt.default_answer_tokens);
    an answer that reaches it ends at a sentence with no notice. A limit the user chose keeps the notice."""
    from rag.prompt import SHORT_ANSWER_TOKENS

    def length_notices(events) -> list:
        return [e for e in events if isinstance(e, pl.Notice) and "length limit" in e.text]

    own = await collect("How do I calibrate a Zorblax widget?", opts(max_new_tokens=0), library)
    done = own[-1]
    assert done.usage.finish_reason == "length", "this greedy answer runs past 64 tokens (did the corpus change?)"
    assert done.usage.completion_tokens == SHORT_ANSWER_TOKENS, done.usage
    assert not length_notices(own), length_notices(own)
    assert done.text.rstrip().endswith((".", "!", "?", ")", "`", "*")), done.text[-80:]
    chosen = await collect("How do I calibrate a Zorblax widget?", opts(max_new_tokens=24), library)
    assert chosen[-1].usage.completion_tokens == 24 and length_notices(chosen), [type(e).__name__ for e in chosen]


async def test_a_left_out_answer_is_one_line_without_a_note_on_how_it_ended(library, tiny_model_dir):
    """The tiny random-weight model writes nothing the documents hold: the answer is the one line saying the
    model's text is left out, with no line explaining a mark that is not shown and no notice about the length
    limit its left-out text reached (test_unchosen_limit_...: an answer that is kept keeps that notice)."""
    from rag.answer.check import NOTHING_ADDED

    events = await collect("How do I calibrate a Zorblax widget?", opts(model="tiny", max_new_tokens=24), library)
    assert events[-1].usage.finish_reason == "length", events[-1].usage
    revised = [e for e in events if isinstance(e, pl.Revised)]
    assert revised and revised[-1].text == NOTHING_ADDED, [e.text for e in revised]
    assert not [e for e in events if isinstance(e, pl.Notice) and "length limit" in e.text]
    assert events[-1].text.endswith(NOTHING_ADDED), events[-1].text[-200:]


def test_a_quote_only_server_loads_no_model_at_start(tmp_path, tiny_model_dir):
    """The warm-up loads the default engine's model unless the default answer style is "quote": such a server
    keeps the model out of memory (a real process each way: is an engine worker running after the warm-up?)."""
    import os
    import subprocess
    import sys

    probe = ("import asyncio, psutil; from rag import pipeline as pl; name = asyncio.run(pl.warm_engine()); "
             "print(name, any('engines.onnx.worker' in ' '.join(c.cmdline()) "
             "for c in psutil.Process().children(recursive=True)))")
    said = {}
    for style in ("quote", "quote+answer"):
        env = dict(os.environ, LRC_ANSWER_STYLE=style, LRC_ENGINE="onnx", LRC_MODEL=str(tiny_model_dir),
                   LRC_DATA_DIR=str(tmp_path / "data"))
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                              cwd=REPO_ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        said[style] = done.stdout.split()
    assert said == {"quote": ["None", "False"], "quote+answer": ["onnx", "True"]}, said
