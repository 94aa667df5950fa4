"""The unseen-document answer sets (bench/data/unseen, issue 26): well-formed, at least 200 questions, the
held-out split by whole document as SPLIT.md declares it, and every gold passage in the document that
`make eval-docs` builds (the test fails naming `make eval-docs` when a document is missing)."""
from __future__ import annotations

import re

import pytest

from rag import answer_eval
from rag.config import REPO_ROOT, settings
from rag.ingest.loaders import load

UNSEEN = REPO_ROOT / "bench" / "data" / "unseen"
SETS = answer_eval.expand_sets([UNSEEN])


def _rows() -> dict[str, list[dict]]:
    return {s.name: [r for name in answer_eval.SETS for r in answer_eval.read_set(s)[name]] for s in SETS}


def test_four_sets_of_200_questions_with_unique_ids():
    rows = _rows()
    assert len(rows) >= 4, sorted(rows)
    ids = [r["id"] for rs in rows.values() for r in rs]
    assert len(ids) >= 200
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for name, rs in rows.items():
        kinds = {r["set"] for r in rs}
        assert kinds == set(answer_eval.SETS), (name, kinds)


def test_every_answerable_question_has_its_fact_and_gold_and_every_followup_its_prior_turn():
    for name, rs in _rows().items():
        for r in rs:
            assert r["question"].strip(), r["id"]
            if r["set"] == "unanswerable":
                continue
            must, case = r.get("must_include_any") or [], r.get("must_match_case", False)
            assert must and all(m.strip() for m in must), r["id"]
            assert r.get("gold_quote", "").strip() and r.get("doc"), r["id"]
            assert not answer_eval.fact_hit(r["question"], must, case), f"{r['id']}: the question holds its own answer"
            if r["set"] == "followups":
                history = r.get("history") or []
                assert [t["role"] for t in history] == ["user", "assistant"], r["id"]
                assert all(t["content"].strip() for t in history), r["id"]
                assert not answer_eval.fact_hit(history[1]["content"], must, case), f"{r['id']}: the prior answer holds it"


def test_split_is_by_whole_document_as_split_md_declares():
    declared = dict(re.findall(r"^\| `([\w-]+)/`.*\| \*\*(dev|held-out)\*\* \|$", (UNSEEN / "SPLIT.md").read_text(),
                               re.M))
    rows = _rows()
    assert set(declared) == set(rows), (sorted(declared), sorted(rows))
    for name, rs in rows.items():
        assert {r.get("split") for r in rs} == {declared[name]}, name
    assert sum(v == "held-out" for v in declared.values()) >= 2


@pytest.mark.parametrize("folder", SETS, ids=[s.name for s in SETS])
def test_documents_hold_every_gold_passage(folder):
    try:
        docs = answer_eval.documents(folder, settings().datasets_dir)
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}: run `make eval-docs` (scripts/fetch_eval_docs.sh) to build the unseen documents")
    blocks = {p.name: load(p).blocks for p in docs}
    for name in answer_eval.SETS[:2]:
        for r in answer_eval.read_set(folder)[name]:
            assert r["doc"] in blocks, (r["id"], r["doc"], sorted(blocks))
            holding = [b for b in blocks[r["doc"]] if answer_eval.holds_quote(b.text, r["gold_quote"])]
            assert holding, f"{r['id']}: gold quote {r['gold_quote']!r} is not in {r['doc']}"
            assert r["page"] in {b.page for b in holding}, (r["id"], r["page"], {b.page for b in holding})
