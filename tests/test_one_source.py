"""One source for each fact (issue 25, item 4): every surface derives from the one definition, so a fact
added there appears everywhere, and nothing here lists the facts by hand.

- The pipeline's per-chat choices: ``rag.pipeline.Options`` (fields made with ``_choice``). A wider Options
  (a subclass with one more choice, put in its place) shows up in the chat's saved state, the CLI's flags and
  /v1's request mapping without another line; the settings panel refuses it loudly until it has a widget.
- The formats: ``rag.ingest.loaders.formats.FORMATS`` builds the dispatch, the unsupported-file reason, the
  CLI help and the welcome text, and holds the upload accept list (.chainlit/config.toml) and the README's
  table equal to it.
- Engine names: ``engines.registry`` (and ``rag.pipeline.AUTO``); no other module writes one.
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from engines import registry
from rag import pipeline as pl
from rag.ingest import loaders
from rag.ingest.loaders import formats

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Wider(pl.Options):
    """Options with one more per-chat choice, as a maintainer would add it."""

    extra: int = pl._choice("top_k", "--extra", "a new choice (test)")


def _dests(module) -> set[str]:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return {a.dest for a in p._actions}


# ------------------------------------------------------------------ Options
def test_the_choices_are_the_fields_marked_as_choices():
    marked = tuple(f.name for f in dataclasses.fields(pl.Options) if f.metadata.get("choice"))
    assert pl.Options.choices() == marked and len(marked) >= 7
    assert Wider.choices() == (*marked, "extra")
    assert set(pl.Options().saved()) == set(marked)


def test_updated_takes_only_the_choices_and_normalises_them():
    base = pl.Options(user="alice", scope=("a.md",), min_score=0.5)
    new = base.updated({"top_k": "4.0", "mode": "dense", "temperature": "9", "style": None, "user": "mallory",
                        "question": "ignored"})
    assert (new.top_k, str(new.mode), new.temperature) == (4, "dense", 2.0)
    assert (new.user, new.scope, new.min_score, new.style) == ("alice", ("a.md",), 0.5, base.style)
    wide = Wider().updated({"extra": "3"})
    assert wide.extra == "3" and wide.normalised().extra == "3"  # a new field survives normalised() as it is
    assert Wider().updated({"extra": 3}).saved()["extra"] == 3


def test_a_new_choice_reaches_the_cli_flags(monkeypatch):
    from rag.cmd import ask, compare, run

    choices = set(pl.Options.choices())
    assert choices <= _dests(ask)
    assert choices - {"engine", "model"} <= _dests(compare)  # the engines come from --a / --b
    assert choices - {"top_k", "mode"} <= _dests(run)  # run's own -k and --mode serve both runs
    monkeypatch.setattr(pl, "Options", Wider)
    assert "extra" in _dests(ask) and "extra" in _dests(compare) and "extra" in _dests(run)
    p = argparse.ArgumentParser()
    ask.add_arguments(p)
    assert pl.Options().updated(vars(p.parse_args(["q", "--extra", "5", "-k", "2"]))).extra == 5


def test_a_new_choice_is_kept_with_a_chat(monkeypatch):
    from chainlit.context import init_http_context

    from rag.chat import state

    async def round_trip():
        init_http_context()
        monkeypatch.setattr(pl, "Options", Wider)
        opts = state.begin({"settings": {"extra": 9, "top_k": 3, "mode": "lexical"}})
        return opts, state.snapshot()["settings"]

    opts, saved = asyncio.run(round_trip())
    assert isinstance(opts, Wider) and (opts.extra, opts.top_k) == (9, 3)
    assert saved == {**Wider().saved(), "extra": 9, "top_k": 3, "mode": "lexical"}


def test_the_settings_panel_has_a_widget_per_choice_in_their_order(monkeypatch):
    from rag.chat import panel

    models = {"(engine default)": panel.DEFAULT}
    widgets = panel.choice_widgets(pl.Options(), models, panel.DEFAULT)
    assert [w.id for w in widgets] == list(pl.Options.choices())
    monkeypatch.setattr(pl, "Options", Wider)
    with pytest.raises(KeyError, match="extra"):  # a choice without a widget fails at once, not silently
        panel.choice_widgets(Wider(), models, panel.DEFAULT)


def test_the_api_maps_a_request_through_updated(monkeypatch):
    from rag.api import chat
    from rag.api.models import ModelChoice
    from rag.api.schemas import ChatRequest

    req = ChatRequest(model="rag", messages=[{"role": "user", "content": "q"}], temperature=0.4, max_tokens=40)
    opts = chat.options(req, ModelChoice("onnx", "tiny"), user="bob")
    assert (opts.engine, opts.model, opts.temperature, opts.max_new_tokens, opts.user) == ("onnx", "tiny", 0.4, 40, "bob")
    monkeypatch.setattr(pl, "Options", Wider)
    assert isinstance(chat.options(req, ModelChoice("onnx", ""), user=None), Wider)


def _code_strings(path: Path):
    """String constants in code (docstrings left out), with their line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def _sources():
    return [ROOT / "app.py", *sorted((ROOT / "rag").rglob("*.py"))]


def _hand_lists(path: Path) -> list[int]:
    """Lines of a tuple, list or set literal naming three or more choices (a second copy of the list)."""
    choices = set(pl.Options.choices())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            if len({e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in choices}) >= 3:
                found.append(node.lineno)
    return found


def test_no_module_lists_the_choices_by_hand():
    """The old SAVED tuple and the CLI's `for name in ("engine", "model", ...)` loops were such copies."""
    assert [f"{p.relative_to(ROOT)}:{n}" for p in _sources() for n in _hand_lists(p)] == []


def test_the_check_for_hand_written_lists_bites(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('SAVED = ("engine", "model", "top_k")\nfor name in ["mode", "style", "temperature"]:\n    pass\n')
    assert _hand_lists(bad) == [1, 2]


# ------------------------------------------------------------------ formats
def test_the_dispatch_is_the_table():
    assert loaders.SUPPORTED_EXTS == {e for f in formats.FORMATS for e in f.exts}
    for f in formats.FORMATS:
        for ext in f.exts:
            assert loaders.kind_for(Path(f"a{ext}")) == f.kind, ext
            assert loaders.kind_for(Path(f"A{ext.upper()}")) == f.kind, ext
            assert (ext in loaders.BINARY_EXTS) == f.binary
    assert tuple(loaders.IMAGE_EXTS) == formats.exts_of("image")
    assert not loaders.is_supported(Path("old.ppt")) and not loaders.is_supported(Path("x.doc"))


def test_the_upload_accept_list_is_the_table():
    config = tomllib.loads((ROOT / ".chainlit" / "config.toml").read_text(encoding="utf-8"))
    accept = config["features"]["spontaneous_file_upload"]["accept"]
    assert accept == formats.upload_accept(), ("regenerate the line with formats.accept_toml()")
    assert formats.accept_toml() in (ROOT / ".chainlit" / "config.toml").read_text(encoding="utf-8")
    assert all("*/*" not in m for m in accept)


def test_the_readme_table_is_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- formats:[^\n]*-->\n(.*?)\n<!-- /formats -->", readme, re.S)
    assert table, "README.md lost its <!-- formats --> block"
    assert table.group(1) == formats.readme_table()
    assert len(table.group(1).splitlines()) == 2 + len(formats.FORMATS)


def test_the_messages_name_every_format():
    from rag.cmd.index import HELP
    from rag.ingest.loaders.errors import UnsupportedType

    err = str(UnsupportedType("notes.xyz", "extension '.xyz'"))
    spoken = formats.spoken_list()
    for f in formats.FORMATS:
        assert f.exts[0] in err and f.exts[0] in HELP, f.exts[0]
        assert (f.exts[0] if f.ocr else f.name) in spoken, f.name
    app = (ROOT / "app.py").read_text(encoding="utf-8")
    assert "formats.spoken_list()" in app
    assert not [n.lineno for n in _code_strings(ROOT / "app.py") if re.search(r"\.(docx|odt|pptx|png|tif)\b", n.value)]


# ------------------------------------------------------------------ engine names
def test_engine_names_are_written_only_in_the_registry():
    """Outside engines/: no code string is an engine's name (rag/config.py's engine_config maps each name to
    its settings and is the one allowed reader; it is not this change's file)."""
    names = set(registry.ENGINES) | {pl.AUTO}
    allowed = {ROOT / "rag" / "config.py": set(registry.ENGINES), ROOT / "rag" / "pipeline.py": {pl.AUTO}}
    found = [f"{path.relative_to(ROOT)}:{n.lineno} {n.value!r}" for path in _sources()
             for n in _code_strings(path) if n.value in names - allowed.get(path, set())]
    assert found == []
    assert registry.IN_PROCESS in registry.ENGINES


def test_the_library_location_is_chosen_in_one_place(monkeypatch, tmp_path):
    """LRC_STORE, else the index folder: decided by ``Settings.library_location`` only; the shared library
    and ``rag migrate`` take it from there (no other module writes the choice again)."""
    from rag.config import REPO_ROOT, settings

    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LRC_STORE", raising=False)
    assert settings().library_location == str(tmp_path / "index")
    monkeypatch.setenv("LRC_STORE", "postgresql://lrc@127.0.0.1:1/lrc")
    assert settings().library_location == "postgresql://lrc@127.0.0.1:1/lrc"
    written = [p.relative_to(REPO_ROOT).as_posix() for root in ("rag", "bench") for p in (REPO_ROOT / root).rglob("*.py")
               if re.search(r"\.store\s+or\b", p.read_text(encoding="utf-8"))]
    assert written == ["rag/config.py"], written
