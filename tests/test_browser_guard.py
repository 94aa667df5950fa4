"""The /browser page's loop guard (browser/page/guard.js) stops a stream where the chat's
(rag.answer.guard.LoopGuard) does: the same streams, fed in pieces of several sizes to both (the page's
module run by Node.js, which `make browser-setup` needs anyway), keep the same text."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rag.answer.guard import LoopGuard
from rag.config import REPO_ROOT

GUARD_JS = REPO_ROOT / "browser" / "page" / "guard.js"
GUIDE = REPO_ROOT / "docs_corpus" / "user-guide.md"

RUNNER = """
import { LoopGuard } from "./guard.mjs";
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ text, step }) => {
    const g = new LoopGuard();
    for (let i = 0; i < text.length; i += step) if (g.feed(text.slice(i, i + step))) break;
    return { looped: g.looped, kept: g.kept };
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def streams() -> list[str]:
    paragraphs = [p.strip() for p in GUIDE.read_text(encoding="utf-8").split("\n\n") if len(p.split()) > 12]
    rows = "".join(f"{a}   {b}   A     A      A      A       A\n" for a, b in zip("BCDEFGHIJKLMNOPQ", "CDEFGHIJKLMNOPQU"))
    made = [
        "The shell exits after the first Ctrl-D press. Type q() to quit. The shell exits after the first Ctrl-D press. More.",
        "Set it to the folder and " * 6,
        "Use --enable-R-shlib to build R as a shared library [1]. The library is libR.so [1]. Then run make install [2].",
        "Yes. It works. Yes. It does.",
        "Here is how to print to a CSV file. This will output something like:\n```\n" + rows,
        "The rows are listed below. " + "".join(f"Row {c}: A A A A.\n" for c in "BCDEFGHIJKLMNOPQ"),
        "Sizes:\n" + "".join(f"{c}. A A\n" for c in "BCDEFGHIJKLMNOPQ"),
        "max = 10**9 gives " + " + ".join(f"10 * 10^{i}" for i in range(9, 0, -1)) + " in the end.",
        "Café crème: naïve façade über straße. " * 3,
        "\n" + "x " * 60,
    ]
    looping = [f"{p}\n\n{p}" for p in paragraphs[:6]]  # a whole paragraph written again
    return made + paragraphs[:12] + looping


def js_guard(cases: list[dict], tmp_path: Path) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is missing: run `make browser-setup` (it installs the page's runtime with npm)", pytrace=False)
    shutil.copy(GUARD_JS, tmp_path / "guard.mjs")
    (tmp_path / "run.mjs").write_text(RUNNER, encoding="utf-8")
    done = subprocess.run([node, str(tmp_path / "run.mjs")], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def py_guard(text: str, step: int) -> dict:
    g = LoopGuard()
    for i in range(0, len(text), step):
        if g.feed(text[i:i + step]):
            break
    return {"looped": g.looped, "kept": g.kept}


def test_the_page_keeps_what_the_chat_keeps(tmp_path):
    cases = [{"text": t, "step": step} for t in streams() for step in (1, 3, 11)]
    got = js_guard(cases, tmp_path)
    expected = [py_guard(c["text"], c["step"]) for c in cases]
    assert sum(e["looped"] for e in expected) >= 3 * 10  # the set holds loops of every kind, and answers without
    assert sum(not e["looped"] for e in expected) >= 3 * 10
    for case, js, py in zip(cases, got, expected):
        assert js == py, (case["text"][:80], case["step"], js, py)
