"""The "auto" engine's rules file (``routing.toml``): ordered targets, deadlines and routes.

A target is an engine and a model to try; targets are tried in file order, and the first one that is
reachable, fits the prompt and sends its first token before its deadline answers. A route moves one
target to the front when the question holds code or the prompt is large. The file is TOML read with
``tomllib``; every error (syntax or meaning) is a :class:`RulesError` that names the file and line.
This module only reads and validates the rules; trying the targets is the caller's job.
"""
from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NoReturn

DEFAULT_DEADLINE_S = 30.0
DEADLINE_KEY = "first_token_deadline_s"
TOP_KEYS = (DEADLINE_KEY, "target", "route")
TARGET_KEYS = ("name", "engine", "model", DEADLINE_KEY, "context_length")
ROUTE_KEYS = ("when", "to")

_PROMPT_WHEN = re.compile(r"prompt_tokens\s*(>=|>)\s*(\d+)")


class RulesError(ValueError):
    """A rules file that cannot be used; ``str()`` reads "<path> line <n>: <message>"."""

    def __init__(self, message: str, path: Path | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = " ".join(part for part in (str(self.path) if self.path else "",
                                           f"line {self.line}" if self.line else "") if part)
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Target:
    """One engine + model to try; ``deadline_s``/``context_length`` None = the rules' / engine's own."""

    engine: str
    model: str = ""
    name: str = ""
    deadline_s: float | None = None
    context_length: int | None = None
    line: int = 0  # the line of its [[target]] header (0: not from a file)

    @property
    def label(self) -> str:
        """The name routes refer to: ``name`` if given, else "<engine>:<model or 'default'>"."""
        return self.name or f"{self.engine}:{self.model or 'default'}"


@dataclass(frozen=True)
class Route:
    """Moves target ``to`` to the front when the question holds code (``code``) or the prompt has at
    least ``min_prompt_tokens`` tokens ("> N" is stored as N + 1)."""

    to: str
    code: bool = False
    min_prompt_tokens: int | None = None
    when: str = ""  # the condition as written in the file
    line: int = 0  # the line of its `when` (0: not from a file)

    def matches(self, question: str, prompt_tokens: int | None) -> bool:
        """Whether this route applies; a prompt-size route never matches an unknown size (None)."""
        if self.code:
            return looks_like_code(question)
        if self.min_prompt_tokens is not None:
            return prompt_tokens is not None and prompt_tokens >= self.min_prompt_tokens
        return False

    def reason(self, question: str, prompt_tokens: int | None) -> str:
        """Why this route sends the question to its target, e.g. "prompt 3,100 tokens > 1,500 (rule at line 15)"."""
        where = f" (rule at line {self.line})" if self.line else ""
        if self.code:
            return f"the question holds code{where}"
        if self.min_prompt_tokens is None:
            return f"rule '{self.when}'{where}"
        m = _PROMPT_WHEN.fullmatch(self.when.strip())
        if m and m.group(1) == ">":
            threshold = f"> {self.min_prompt_tokens - 1:,}"
        else:
            threshold = f">= {self.min_prompt_tokens:,}"
        size = f"{prompt_tokens:,}" if prompt_tokens is not None else "unknown"
        return f"prompt {size} tokens {threshold}{where}"


@dataclass(frozen=True)
class Rules:
    """The parsed rules: targets in file order, routes in file order, the default deadline."""

    targets: tuple[Target, ...]
    routes: tuple[Route, ...]
    deadline_s: float = DEFAULT_DEADLINE_S
    path: Path | None = None

    def deadline(self, target: Target) -> float:
        """Seconds ``target`` has to send its first token before the next target is tried."""
        return target.deadline_s if target.deadline_s is not None else self.deadline_s

    def order(self, question: str, prompt_tokens: int | None = None) -> list[tuple[Target, str]]:
        """Every target with why it is there, in the order to try. The first matching route's target
        comes first with that route's reason; the rest follow in file order with reason ""."""
        for route in self.routes:
            if route.matches(question, prompt_tokens):
                first = self.target(route.to)
                return [(first, route.reason(question, prompt_tokens))] + \
                       [(t, "") for t in self.targets if t is not first]
        source = self.path.name if self.path else "the routing rules"
        return [(t, f"first target in {source}" if i == 0 else "") for i, t in enumerate(self.targets)]

    def target(self, name: str) -> Target:
        """The target with this label (KeyError if none)."""
        for t in self.targets:
            if t.label == name:
                return t
        raise KeyError(f"no target '{name}' (targets: {', '.join(t.label for t in self.targets)})")


# ------------------------------------------------------------------------------- code questions
_FENCE = re.compile(r"```|~~~")
# foo(x), np.array(), print(): the whole name before "(" from where it begins ((?<![\w.]), so a name with
# many dots is read once, not again from each dot), then one of its dotted parts must start with a letter
_CALL = re.compile(r"(?<![\w.])([\w.]*)\(([^()\n]*)\)")
_CALLABLE = re.compile(r"(?:^|\.)[A-Za-z_]")
_PROSE_PARENS = {"s", "es"}  # "file(s)"
_CUES = re.compile(
    r"^[^\S\n]*(?:from\s+[\w.]+\s+)?import\s+[\w.]+"  # import x / from x import y (at a line start)
    r"|\bdef\s+\w+\s*\(|\bclass\s+\w+\s*[:(]"      # def f( / class C:
    r"|#include\b|=>|\w::\w|\w\s*(?:==|!=|&&|\|\|)\s*\w"
    r"|\b[A-Z]\w*(?:Error|Exception):",           # TypeError: ... (a traceback)
    re.MULTILINE)  # (SELECT ... FROM: _sql; as one pattern it read each line again from every SELECT)
_SELECT = re.compile(r"\bSELECT\b")
_FROM = re.compile(r"\bFROM\b")
_INLINE = re.compile(r"`([^`\n]+)`")
_INLINE_CODE = re.compile(r"[=;{}()\[\]<>]")
_INDENTED_CODE = re.compile(  # an indented line that reads as code, not as indented prose
    r"[=;{}]|\w\(|^\s*(?:def|class|import|function|var|let|const|public|private|static|void|fn|#include)\b"
    r"|^\s*(?:for|if|elif|else|while|try|except|with)\b.*:\s*$")


def looks_like_code(question: str) -> bool:
    """Whether the question holds code: a fenced block, code-looking lines indented by 4 spaces or a
    tab, or a clear cue (``foo(x)``, ``def``, ``import``, ``#include``, ``=>``, ``{ ...; }``, an
    ``...Error:`` line, inline `code` with code characters). Plain prose (flags, "file(s)") is not."""
    if _FENCE.search(question) or _CUES.search(question) or _sql(question):
        return True
    if any(_CALLABLE.search(m.group(1)) and m.group(2).strip() not in _PROSE_PARENS
           for m in _CALL.finditer(question)):
        return True
    if "{" in question and "}" in question and ";" in question:
        return True
    if any(_INLINE_CODE.search(m.group(1)) for m in _INLINE.finditer(question)):
        return True
    return any(line.startswith(("    ", "\t")) and _INDENTED_CODE.search(line) for line in question.splitlines())


def _sql(question: str) -> bool:
    """A line with SELECT and, after it, FROM (the first SELECT of a line is the one to try)."""
    for line in question.split("\n"):
        select = _SELECT.search(line)
        if select and _FROM.search(line, select.end() + 1):
            return True
    return False


# ------------------------------------------------------------------------------- where in the file
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?")


def _key_line(lines: list[str], key: str, table: str | None = None, index: int = 0) -> int | None:
    """1-based line of ``key = ...`` in the ``index``-th ``[[table]]`` (``table`` None: the top
    level, where a ``[key]``/``[[key]]`` header also counts); else that table's header line; else
    None. ``key`` "" finds the header. A scan of raw lines, good enough for error messages."""
    wanted = (table, index) if table else None
    key_re = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]""") if key else None
    counts: dict[str, int] = {}
    current: tuple[str, int] | None = None
    header: int | None = None
    for no, raw in enumerate(lines, 1):
        head = _HEADER.match(raw)
        if head:
            name = head.group(2).strip("\"'")
            if head.group(1) == "[[":
                current = (name, counts.get(name, 0))
                counts[name] = current[1] + 1
            else:
                current = (name, -1)
            if table is None and key and name.split(".")[0] == key:
                return no
            if current == wanted:
                header = no
                if not key:
                    return no
        elif key_re and current == wanted and key_re.match(raw):
            return no
    return header


# ------------------------------------------------------------------------------- parsing
class _Checker:
    """Validates one parsed file, raising RulesError at the offending line."""

    def __init__(self, text: str, engines: tuple[str, ...], path: Path | None):
        self.lines = text.splitlines()
        self.engines = engines
        self.path = path

    def fail(self, message: str, key: str = "", table: str | None = None, index: int = 0,
             line: int | None = None) -> NoReturn:
        line = line or _key_line(self.lines, key, table, index)
        if line is None and table:  # written inline (target = [{...}]): the line of `target =`
            line = _key_line(self.lines, table)
        raise RulesError(message, self.path, line)

    def no_unknown_keys(self, data: dict, allowed: tuple[str, ...], table: str | None, index: int = 0) -> None:
        for key in data:
            if key not in allowed:
                where = f"[[{table}]]" if table else "the top level"
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f" (allowed: {', '.join(allowed)})"
                self.fail(f"unknown key '{key}' in {where}{hint}", key, table, index)

    def deadline(self, value: Any, table: str | None, index: int = 0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            self.fail(f"{DEADLINE_KEY} must be a number of seconds > 0, not {value!r}", DEADLINE_KEY, table, index)
        return float(value)

    def string(self, data: dict, key: str, index: int, table: str = "target") -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            self.fail(f"{key} in [[{table}]] must be a string in quotes, not {value!r}", key, table, index)
        return value

    def tables(self, data: dict, key: str) -> list[dict]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(f"'{key}' must be written as [[{key}]] tables", key)
        return value

    def target(self, data: dict, i: int) -> Target:
        self.no_unknown_keys(data, TARGET_KEYS, "target", i)
        known = ", ".join(self.engines)
        if "engine" not in data:
            self.fail(f"[[target]] has no engine (engine = one of: {known})", "", "target", i)
        engine = self.string(data, "engine", i)
        if engine not in self.engines:
            self.fail(f"unknown engine '{engine}' (known engines: {known})", "engine", "target", i)
        name = self.string(data, "name", i)
        if "name" in data and not name.strip():
            self.fail("name in [[target]] must not be empty (leave it out for the default name)", "name", "target", i)
        context = data.get("context_length")
        if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context <= 0):
            self.fail(f"context_length must be a whole number of tokens > 0, not {context!r}",
                      "context_length", "target", i)
        deadline = self.deadline(data[DEADLINE_KEY], "target", i) if DEADLINE_KEY in data else None
        return Target(engine=engine, model=self.string(data, "model", i).strip(), name=name,
                      deadline_s=deadline, context_length=context, line=_key_line(self.lines, "", "target", i) or 0)

    def route(self, data: dict, i: int, labels: list[str]) -> Route:
        self.no_unknown_keys(data, ROUTE_KEYS, "route", i)
        for key in ROUTE_KEYS:
            if key not in data:
                self.fail(f"[[route]] has no '{key}'", "", "route", i)
        when, to = self.string(data, "when", i, "route"), self.string(data, "to", i, "route")
        line = _key_line(self.lines, "when", "route", i) or 0
        prompt = _PROMPT_WHEN.fullmatch(when.strip())
        if when.strip().lower() == "code":
            route = Route(to=to, code=True, when=when, line=line)
        elif prompt:
            threshold = int(prompt.group(2)) + (1 if prompt.group(1) == ">" else 0)
            route = Route(to=to, min_prompt_tokens=threshold, when=when, line=line)
        else:
            self.fail(f"when = '{when}' is not understood: write \"code\" or \"prompt_tokens > N\" (or >=)",
                      "when", "route", i)
        if to not in labels:
            self.fail(f"target '{to}' in [[route]] is not defined (targets: {', '.join(labels)})", "to", "route", i)
        return route

    def rules(self, data: dict) -> Rules:
        self.no_unknown_keys(data, TOP_KEYS, None)
        deadline = self.deadline(data[DEADLINE_KEY], None) if DEADLINE_KEY in data else DEFAULT_DEADLINE_S
        target_tables = self.tables(data, "target")
        if not target_tables:
            self.fail("no [[target]] table: add at least one (engine = one of: " + ", ".join(self.engines) + ")",
                      line=1)
        targets: list[Target] = []
        for i, table in enumerate(target_tables):
            target = self.target(table, i)
            twin = next((t for t in targets if t.label == target.label), None)
            if twin:
                self.fail(f"target name '{target.label}' is used twice (first at line {twin.line}); "
                          "give each target its own name", "name", "target", i)
            targets.append(target)
        labels = [t.label for t in targets]
        routes = tuple(self.route(table, i, labels) for i, table in enumerate(self.tables(data, "route")))
        return Rules(targets=tuple(targets), routes=routes, deadline_s=deadline, path=self.path)


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def parse(text: str, known_engines: Iterable[str], path: Path | None = None) -> Rules:
    """The rules in ``text`` (``path`` is only named in errors); RulesError at the offending line."""
    path = Path(path) if path is not None else None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = str(exc), None
        if m := _TOML_AT.search(message):
            message, line = f"{message[:m.start()]} (column {m.group(2)})", int(m.group(1))
        elif m := _TOML_END.search(message):
            message, line = f"{message[:m.start()]} (at the end of the file)", max(len(text.splitlines()), 1)
        raise RulesError(f"not valid TOML: {message}", path, line) from None
    return _Checker(text, tuple(known_engines), path).rules(data)


def load(path: str | Path, known_engines: Iterable[str]) -> Rules:
    """The rules in the file at ``path``; RulesError naming the path if it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError("the routing rules file does not exist", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"the routing rules file cannot be read ({exc})", path) from None
    return parse(text, known_engines, path)


def default_path() -> Path:
    """The repository's ``routing.toml``."""
    return Path(__file__).resolve().parents[2] / "routing.toml"
