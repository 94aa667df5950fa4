"""The "auto" engine's rules file: the shipped routing.toml, ordering and routes, errors that name
their line, and the code-question heuristic. Plain parsing: no models, no services."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rag.routing.rules import (Route, Rules, RulesError, Target, _key_line, default_path, load, looks_like_code,
                               parse)

ENGINES = ("onnx", "foundry")


def rules(text: str) -> Rules:
    return parse(textwrap.dedent(text), ENGINES, Path("routing.toml"))


def error(text: str) -> RulesError:
    with pytest.raises(RulesError) as info:
        rules(text)
    return info.value


ROUTED = """\
    first_token_deadline_s = 25

    [[target]]
    name = "small"
    engine = "onnx"
    first_token_deadline_s = 10

    [[target]]
    name = "coder"
    engine = "foundry"
    model = "qwen2.5-coder-1.5b"

    [[target]]
    engine = "foundry"
    model = "phi-4-mini"
    context_length = 8192

    [[route]]
    when = "code"
    to = "coder"

    [[route]]
    when = "prompt_tokens > 1500"
    to = "foundry:phi-4-mini"
    """


# ------------------------------------------------------------------------------- the shipped file
def test_the_shipped_file_parses_and_keeps_file_order():
    parsed = load(default_path(), ENGINES)
    assert default_path() == Path(__file__).resolve().parents[1] / "routing.toml"
    assert [t.engine for t in parsed.targets] == ["onnx", "foundry"]
    assert [t.model for t in parsed.targets] == ["", ""]
    assert parsed.routes == ()
    assert parsed.deadline_s == 30.0
    local, foundry = parsed.targets
    assert parsed.deadline(local) == 20.0 and parsed.deadline(foundry) == 30.0
    order = parsed.order("def f(x): return x  # code, but there is no route", prompt_tokens=99_999)
    assert [t for t, _ in order] == list(parsed.targets)
    assert [why for _, why in order] == ["first target in routing.toml", ""]


def test_the_shipped_examples_parse_when_uncommented():
    """The commented-out examples are the documentation of routes: they must work as written."""
    text = default_path().read_text(encoding="utf-8")
    uncommented = text.replace("\n# [[", "\n[[").replace("\n# name", "\nname").replace("\n# engine", "\nengine") \
        .replace("\n# model", "\nmodel").replace("\n# when", "\nwhen").replace("\n# to", "\nto")
    parsed = parse(uncommented, ENGINES)
    assert [t.label for t in parsed.targets] == ["local", "foundry", "coder"]
    assert [r.to for r in parsed.routes] == ["coder", "foundry"]
    assert parsed.routes[1].min_prompt_tokens == 1501


# ------------------------------------------------------------------------------- targets and routes
def test_targets_labels_deadlines_and_context_lengths():
    parsed = rules(ROUTED)
    small, coder, large = parsed.targets
    assert [t.label for t in parsed.targets] == ["small", "coder", "foundry:phi-4-mini"]
    assert Target(engine="onnx").label == "onnx:default"
    assert parsed.deadline_s == 25.0
    assert parsed.deadline(small) == 10.0 and parsed.deadline(coder) == 25.0
    assert large.context_length == 8192 and small.context_length is None
    assert (small.line, coder.line, large.line) == (3, 8, 13)
    assert parsed.target("coder") is coder
    with pytest.raises(KeyError):
        parsed.target("nope")


def test_a_code_route_puts_the_coder_first_with_its_reason():
    parsed = rules(ROUTED)
    order = parsed.order("Why does this fail?\n```python\nprint(1/0)\n```")
    assert [t.label for t, _ in order] == ["coder", "small", "foundry:phi-4-mini"]
    assert order[0][1] == "the question holds code (rule at line 19)"
    assert [why for _, why in order[1:]] == ["", ""]


def test_prose_keeps_file_order():
    order = rules(ROUTED).order("What does the warranty cover?", prompt_tokens=200)
    assert [t.label for t, _ in order] == ["small", "coder", "foundry:phi-4-mini"]
    assert order[0][1] == "first target in routing.toml"


def test_a_prompt_route_matches_only_above_its_threshold():
    parsed = rules(ROUTED)
    route = parsed.routes[1]
    assert route.min_prompt_tokens == 1501 and route.when == "prompt_tokens > 1500" and route.line == 23
    assert route.matches("plain question", 1501)
    assert not route.matches("plain question", 1500)
    assert not route.matches("plain question", 10)
    assert not route.matches("plain question", None)
    order = parsed.order("plain question", prompt_tokens=3100)
    assert [t.label for t, _ in order] == ["foundry:phi-4-mini", "small", "coder"]
    assert order[0][1] == "prompt 3,100 tokens > 1,500 (rule at line 23)"
    assert parsed.order("plain question", prompt_tokens=1500)[0][0].label == "small"
    assert parsed.order("plain question")[0][0].label == "small"  # size unknown: no prompt route


def test_at_least_threshold_and_first_matching_route_wins():
    parsed = rules("""\
        [[target]]
        name = "a"
        engine = "onnx"
        [[target]]
        name = "b"
        engine = "foundry"
        [[route]]
        when = "prompt_tokens>=100"
        to = "b"
        [[route]]
        when = "code"
        to = "a"
        """)
    route = parsed.routes[0]
    assert route.min_prompt_tokens == 100
    assert route.matches("q", 100) and not route.matches("q", 99)
    assert route.reason("q", 1234) == "prompt 1,234 tokens >= 100 (rule at line 8)"
    # both routes match; the first one in the file decides
    assert [t.label for t, _ in parsed.order("foo(x)?", prompt_tokens=500)] == ["b", "a"]
    assert [t.label for t, _ in parsed.order("foo(x)?", prompt_tokens=5)] == ["a", "b"]


def test_route_built_in_code():
    route = Route(to="x", min_prompt_tokens=10)
    assert route.matches("q", 10) and not route.matches("q", 9)
    assert route.reason("q", 12) == "prompt 12 tokens >= 10"


# ------------------------------------------------------------------------------- errors name the line
def test_toml_syntax_error_names_its_line():
    err = error("""\
        [[target]]
        engine = "onnx"
        model "phi"
        """)
    assert err.line == 3
    assert "not valid TOML" in err.message and "(at line" not in err.message
    assert str(err).startswith("routing.toml line 3: not valid TOML")


def test_unknown_engine():
    err = error("""\
        [[target]]
        name = "x"
        engine = "ollama"
        """)
    assert err.line == 3
    assert "unknown engine 'ollama'" in err.message and "onnx, foundry" in err.message


def test_missing_engine_points_at_the_table():
    err = error("""\
        [[target]]
        engine = "onnx"

        [[target]]
        model = "phi-4-mini"
        """)
    assert err.line == 4 and "no engine" in err.message


def test_undefined_route_target():
    err = error("""\
        [[target]]
        name = "small"
        engine = "onnx"
        [[target]]
        name = "large"
        engine = "foundry"

        [[route]]
        when = "code"
        to = "coder"
        """)
    assert err.line == 10
    assert str(err) == ("routing.toml line 10: target 'coder' in [[route]] is not defined "
                        "(targets: small, large)")


def test_duplicate_name():
    err = error("""\
        [[target]]
        name = "main"
        engine = "onnx"

        [[target]]
        engine = "foundry"
        name = "main"
        """)
    assert err.line == 7 and "'main' is used twice" in err.message and "line 1" in err.message


def test_duplicate_default_names_point_at_the_second_table():
    err = error("""\
        [[target]]
        engine = "onnx"
        [[target]]
        engine = "onnx"
        """)
    assert err.line == 3 and "'onnx:default' is used twice" in err.message


def test_bad_when():
    err = error("""\
        [[target]]
        engine = "onnx"
        [[route]]
        to = "onnx:default"
        when = "tokens > 100"
        """)
    assert err.line == 5 and "'tokens > 100' is not understood" in err.message


def test_negative_deadline_in_a_target():
    err = error("""\
        [[target]]
        engine = "onnx"
        first_token_deadline_s = -5
        """)
    assert err.line == 3 and "first_token_deadline_s must be a number of seconds > 0" in err.message


def test_bad_top_level_deadline():
    err = error("""\
        # comment
        first_token_deadline_s = "soon"
        [[target]]
        engine = "onnx"
        """)
    assert err.line == 2 and "'soon'" in err.message


def test_bad_types():
    err = error("""\
        [[target]]
        engine = "foundry"
        model = 4
        """)
    assert err.line == 3 and "model in [[target]] must be a string" in err.message
    err = error("""\
        [[target]]
        engine = "foundry"
        context_length = 0
        """)
    assert err.line == 3 and "context_length" in err.message
    err = error("""\
        [[target]]
        engine = "foundry"
        context_length = true
        """)
    assert err.line == 3 and "context_length" in err.message


def test_unknown_key_typo():
    err = error("""\
        [[target]]
        engine = "onnx"

        [[target]]
        engine = "foundry"
        modle = "phi-4-mini"
        """)
    assert err.line == 6
    assert "unknown key 'modle'" in err.message and "did you mean 'model'" in err.message


def test_unknown_table_name_at_the_top_level():
    err = error("""\
        first_token_deadline_s = 30

        [[targets]]
        engine = "onnx"
        """)
    assert err.line == 3 and "unknown key 'targets'" in err.message


def test_a_single_table_instead_of_an_array_of_tables():
    err = error("""\
        [target]
        engine = "onnx"
        """)
    assert err.line == 1 and "[[target]]" in err.message


def test_no_targets():
    err = error("""\
        first_token_deadline_s = 30
        """)
    assert err.line == 1 and "no [[target]]" in err.message
    assert error("").line == 1


def test_missing_file_names_its_path(tmp_path):
    missing = tmp_path / "nowhere" / "routing.toml"
    with pytest.raises(RulesError) as info:
        load(missing, ENGINES)
    assert info.value.path == missing and info.value.line is None
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)


def test_load_names_the_path_in_errors(tmp_path):
    path = tmp_path / "routing.toml"
    path.write_text('[[target]]\nengine = "x"\n', encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load(path, ENGINES)
    assert str(info.value).startswith(f"{path} line 2: unknown engine 'x'")


def test_key_line_helper():
    lines = textwrap.dedent("""\
        first_token_deadline_s = 5
        [[target]]
        engine = "onnx"
        [[route]]
        when = "code"
        [[target]]
        # engine = "commented"
        "engine" = "foundry"
        [[target]]
        name = "x"
        """).splitlines()
    assert _key_line(lines, "first_token_deadline_s") == 1
    assert _key_line(lines, "engine", "target", 0) == 3
    assert _key_line(lines, "engine", "target", 1) == 8  # quoted key; the comment is skipped
    assert _key_line(lines, "engine", "target", 2) == 9  # not in the table: its header
    assert _key_line(lines, "", "route", 0) == 4
    assert _key_line(lines, "when", "route", 1) is None  # no such table
    assert _key_line(lines, "route") == 4  # a top-level key written as a table header


# ------------------------------------------------------------------------------- code questions
@pytest.mark.parametrize("question", [
    "Why does this fail?\n```python\nprint(1/0)\n```",
    "Why does this loop never end?\n    while i < 10:\n        total += i",
    "What is wrong here:\n\tint x = 0;",
    "What does foo(x) return?",
    "Why does print() show nothing?",
    "def add(a, b): return a + b gives None, why?",
    "import numpy as np\nwhy is np.zeros slow?",
    "#include <stdio.h> is not found",
    "What does const f = x => x * 2 do?",
    "if x { y = 1; } -- why the error?",
    "TypeError: 'NoneType' object is not subscriptable",
    "Is std::vector faster than a list?",
    "Why is `x = [1, 2]` a list?",
    "Why is this slow?\n    for row in rows:\n        send row",
])
def test_code_questions(question):
    assert looks_like_code(question)


@pytest.mark.parametrize("question", [
    "How do I install R on Windows?",
    "What does the -O3 flag do?",
    "What does `-O3` do?",
    "Which file(s) mention the warranty?",
    "What is the refund policy (for EU customers)?",
    "Summarize chapter 3; focus on the key results.",
    "Is the import tax on cars higher than 10%?",
    "Compare version 2.0 and 3.1 of the API.",
    "What is C++ used for?",
    "Dear team,\n    please summarize the attached minutes.",
    "Notes:\n    (see the attached minutes)\n    for the meeting on Monday",
    "What is in `README.md`?",
    "",
])
def test_prose_questions(question):
    assert not looks_like_code(question)
