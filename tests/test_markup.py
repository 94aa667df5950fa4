"""rag.markup: Markdown from documents and models made inert, checked against a real CommonMark renderer
(markdown-it-py with raw HTML on and every URL trusted, the most a page could allow), streamed in pieces,
and fed 1 MiB of adversarial text under a time bound."""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from rag.markup import JOINER, Neutraliser, code_text, neutralise

REPO_ROOT = Path(__file__).resolve().parents[1]
RENDER = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
RENDER.validateLink = lambda url: True  # a renderer that trusts every URL: what rag.markup must not rely on
ALLOWED_TAGS = {"p", "a", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4",
                "h5", "h6", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "s"}
SAFE_HREF = re.compile(r"(https?:|mailto:)", re.I)

HOSTILE = [
    "![x](http://127.0.0.1:9/beacon.png)",
    "![x](http://127.0.0.1:9/beacon.png \"title\")",
    "![x][r]\n\n[r]: http://127.0.0.1:9/ref.png",
    "![r]\n\n[r]: http://127.0.0.1:9/short.png",
    "[![x](http://127.0.0.1:9/in-link.png)](http://example.org)",
    "<img src=http://127.0.0.1:9/tag.png>",
    "<IMG SRC='http://127.0.0.1:9/upper.png'>",
    "<div>\n<img src=http://127.0.0.1:9/block.png>\n</div>",
    "<script>fetch('http://127.0.0.1:9/s')</script>",
    "<!-- x --><svg onload=alert(1)>",
    "[t](javascript:alert(1))",
    "[t]( JavaScript:alert(1) )",
    "[t](<javascript:alert(1)>)",
    "[t](&#106;avascript:alert(1))",
    "[t](data:text/html;base64,PHNjcmlwdD4=)",
    "[t](vbscript:msgbox)",
    "[t](file:///etc/passwd)",
    "[t][r]\n\n[r]: javascript:alert(1)",
    "[r]\n\n[r]:\n  data:text/html,x",
    "<javascript:alert(1)>",
    "<http://127.0.0.1:9/autolink>",
    "`code` ![x](http://127.0.0.1:9/after-code.png) `",
    "```\n![x](http://127.0.0.1:9/in-fence.png)\n```",
    "  ```\nx\n```\n![x](http://127.0.0.1:9/after-fence.png)\n```",
    "> quote ![x](http://127.0.0.1:9/q.png)",
    "- item [t](javascript:x)\n- <img src=x>",
    "| a | b |\n|---|---|\n| ![x](http://127.0.0.1:9/cell.png) | <img src=y> |",
    "line\r![x](http://127.0.0.1:9/cr.png)",
]

ORDINARY = [
    "The lamp blinks green [1]. Hold the button for 5 s [2].",
    "**Bold**, *italic*, `inline code`, and a list:\n\n- one\n- two [3]\n\n1. first\n2. second",
    "See [the manual](https://example.org/manual) or [mail us](mailto:help@example.org).",
    "```python\nx = [1, 2, 3]\nprint(x[0])\n```",
    "| key | value |\n|---|---|\n| a | 1 |",
    "Wow! It works! a < b, x <- 5, 3 > 2, [1], [2]; array[i] and f(x).",
    "> From your documents:\n> The lamp blinks green — *a.md, p. 3*",
    "**Sources:** [1] a.md · [2] b.pdf, p. 3",
]


def _tags(html: str) -> set[str]:
    return {m.lower() for m in re.findall(r"<\s*/?\s*([A-Za-z][A-Za-z0-9-]*)", html)}


def _assert_inert(text: str) -> str:
    html = RENDER.render(text)
    assert _tags(html) <= ALLOWED_TAGS, (text, html)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(SAFE_HREF.match(h) for h in hrefs), (text, html)
    return html


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_as_text(text):
    raw = RENDER.render(text).lower()
    assert "<img" in raw or "<script" in raw or "<svg" in raw or 'href="' in raw or "<div" in raw or "<pre" in raw \
        or "</code>" in raw, raw  # the raw text does render something live (else the case tests nothing)
    html = _assert_inert(neutralise(text))
    assert "<img" not in html and "<script" not in html
    visible = re.sub(r"<[^>]+>", "", html).replace(JOINER, "")
    for word in re.findall(r"(?:\]\(|src=|SRC='|<)(http://127\.0\.0\.1:9/[a-z-]+)", text):
        assert word in visible, (text, html)  # an image's or a tag's URL shows as text: the reader sees it


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_unchanged(text):
    assert neutralise(text) == text


def test_what_the_splits_look_like():
    j = JOINER
    assert neutralise("![x](http://h/b.png)") == f"!{j}[x]{j}(http://h/b.png)"
    assert neutralise("[t](javascript:alert(1))") == f"[t]{j}(javascript:alert(1))"
    assert neutralise("[r]: data:x") == f"[r]{j}: data:x"
    assert neutralise("<img src=x> a<b") == f"<{j}img src=x> a<{j}b"
    assert neutralise("[t](<https://ok>)") == "[t](<https://ok>)"
    assert neutralise("[t](http://ok) [r]: https://ok") == "[t](http://ok) [r]: https://ok"
    assert neutralise(" ".join(["x"] * 3) + "](" + " " * 40 + "http://far") == f"x x x]{j}(" + " " * 40 + "http://far"


def test_a_rendered_neutralised_text_reads_the_same():
    text = "Look: ![logo](http://h/l.png) then <b>bold</b> and [t](javascript:x)."
    visible = re.sub(r"<[^>]+>", "", RENDER.render(neutralise(text))).replace(JOINER, "").strip()
    assert visible == text.replace("<", "&lt;").replace(">", "&gt;")


FRAGMENTS = ["![", "[", "]", "](", "]:", "<", "<a", "</", "<!", "http://h", "https://", "javascript:", "data:",
             "mailto:", " ", "\n", "\r", "\n\n", "```", "`", "x", "alt", ")", "(", "!", "&#106;", "<http://h>",
             "![a](http://h/i.png)", "[t](javascript:1)", "\t", "> ", "- ", "|"]


def _random_texts(n: int, seed: int = 7):
    rng = random.Random(seed)
    for _ in range(n):
        yield "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 40)))


def test_random_markdown_is_inert_idempotent_and_the_same_streamed():
    rng = random.Random(11)
    for text in _random_texts(3000):
        once = neutralise(text)
        _assert_inert(once)
        assert neutralise(once) == once, text  # the chat neutralises source names twice: they must still match
        assert once.replace(JOINER, "") == text.replace(JOINER, "")  # only joiners are added
        n, parts, i = Neutraliser(), [], 0
        while i < len(text):
            k = rng.randint(1, 6)
            parts.append(n.feed(text[i:i + k]))
            i += k
        assert "".join(parts) + n.flush() == once, text


def test_text_fed_after_a_flush_continues_it_safely():
    for first, rest in [("see !", "[x](http://h/i.png)"), ("a ]", "(javascript:x)"), ("a <", "img src=x>"),
                        ("[a]", "(data:x)"), ("![a]", "(http://h/i.png)")]:
        n = Neutraliser()
        out = n.feed(first) + n.flush() + n.feed(rest) + n.flush()
        assert out.replace(JOINER, "") == first + rest
        _assert_inert(out)
        assert "<img" not in RENDER.render(out)


def test_a_stream_holds_back_only_a_short_tail():
    n = Neutraliser()
    assert n.feed("Plain words [1] and more") == "Plain words [1] and more"
    assert n.feed(" then ![") == f" then !{JOINER}["
    assert n.feed("x](ht") == f"x]{JOINER}(ht"  # an image's "](" is split at once
    assert n.feed(" and [t") == " and [t"
    assert n.feed("](ht") == ""  # a link's "](" waits for its scheme
    assert n.feed("tps://ok) or [u](java") == f"](https://ok) or [u]{JOINER}(java"  # no safe scheme starts so
    assert n.feed("script:x) !") == "script:x) "
    assert n.flush() == "!"


def test_code_text_cannot_leave_the_code_block_it_is_put_in():
    passage = "intro\n```\n![x](http://h/b.png)\n   ````\n<img src=x>\r```\n~~~"
    html = RENDER.render("```text\n" + code_text(passage) + "\n```")
    assert html.count("<pre>") == 1 and "<img" not in html.replace("&lt;img", "")
    shown = re.sub(r"<[^>]+>", "", html).replace(JOINER, "").strip()
    assert shown.replace("&lt;", "<").replace("&gt;", ">") == passage.replace("\r", "\n")
    assert code_text("no fence here\n`inline`") == "no fence here\n`inline`"


ADVERSARIAL = {
    "images": "![" * (1 << 19),
    "open brackets then closes": "[" * (1 << 19) + "]" * (1 << 19),
    "link openers": "](" * (1 << 19),
    "spaces after an opener": "](" + " " * (1 << 20),
    "almost-safe destinations": ("](" + " " * 31 + "htt") * ((1 << 20) // 36 + 1),
    "tags": "<a" * (1 << 19),
    "bangs and less-thans": "!<" * (1 << 19),
    "definitions": "[r]: javascript:" * (1 << 16),
    "line ends": "\r\n[" * ((1 << 20) // 3 + 1),
    "nested images": "![" * (1 << 18) + "](x)" * (1 << 17),
    "fence lines": "```\n" * (1 << 18),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_one_mebibyte_of_adversarial_text_takes_linear_time(name):
    text = ADVERSARIAL[name]
    assert len(text) >= 1 << 20
    start = time.perf_counter()
    out = neutralise(text)
    code = code_text(text)
    seconds = time.perf_counter() - start
    assert seconds < 10, f"{name}: {seconds:.1f} s for 1 MiB (a super-linear pass would take hours)"
    assert out.replace(JOINER, "") == text and code.replace(JOINER, "") == text.replace("\r", "")


def test_a_stream_of_one_character_pieces_takes_linear_time():
    text = ("](" + " " * 20 + "ht") * (1 << 13) + "![" * (1 << 16)  # each piece leaves a tail to re-read
    start = time.perf_counter()
    n = Neutraliser()
    out = "".join(n.feed(c) for c in text) + n.flush()
    assert time.perf_counter() - start < 10 and out == neutralise(text)


def test_the_browser_page_sets_text_only():
    """The /browser page shows the quote, the answer and the passages with textContent (so nothing in them
    is HTML or Markdown there): no script of the page may put text into the page as HTML."""
    for js in sorted((REPO_ROOT / "browser" / "page").glob("*.js")):
        source = js.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
                     "DOMParser"):
            assert sink not in source, f"{js.name} uses {sink}: neutralise what it renders (rag.markup's rules)"
    page = (REPO_ROOT / "browser" / "page" / "page.js").read_text(encoding="utf-8")
    assert '$("answer").textContent' in page and "text.textContent" in page and "createTextNode(plain" in page


def test_the_v1_transcript_neutralises_what_a_client_renders_streamed_or_not():
    from rag.api.render import StopCutter, Transcript
    from rag.events import Done, Quoted, Sources, Token
    from rag.schema import Chunk, Hit
    from engines.base import Usage

    hostile = "Lamp ![x](http://127.0.0.1:9/q.png) [t](javascript:alert(1)) <img src=x>."
    hit = Hit(Chunk(id=1, text=hostile, source="/d/a.md"), 0.5, 1)
    answer = ["See ", "![", "y](http://127.0.0.1:9/a.png?q=secret", ") and [u](java", "script:x) [1]."]
    events = [Quoted([(hostile, hit)], 0.1), *[Token(t) for t in answer], Sources([hit], [hit]),
              Done(Usage(finish_reason="stop"), "onnx", "m", "", "".join(answer))]
    for streaming in (True, False):
        t = Transcript(streaming)
        streamed = "".join(t.feed(ev) for ev in events)
        content = t.content()
        if streaming:
            assert streamed == content
        html = _assert_inert(content)
        assert "<img" not in html and "127.0.0.1:9/a.png?q=secret" in html.replace(JOINER, "")
        assert content.replace(JOINER, "").count("![") == 2 and "[1]." in content
        assert t.sources[0]["text"] == neutralise(hostile) != hostile
    cutter = StopCutter(["<img"])  # a stop string is found in the neutralised text too
    assert cutter.feed(neutralise("before <img src=x> after")) == "before "
