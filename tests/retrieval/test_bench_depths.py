"""`rag bench evidence --retrieval-only` (bench/bench_evidence.py): the gold passage's rank at each depth,
with the real library (MiniLM, FAISS, BM25) on a small manual."""
from __future__ import annotations

import importlib.util

import pytest

from rag.config import REPO_ROOT
from rag.library import Library

MANUAL = """# Garden manual

## Watering

Tomatoes want deep watering twice a week, at the roots, in the morning.

## Pruning

Cut the side shoots of tomatoes when they are a finger long.

## Tools

A sharp knife and a watering can are all the tools this manual needs.
"""


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_evidence", REPO_ROOT / "bench" / "bench_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_depth_ranks_and_table(bench, tmp_path, embedder):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "garden.md").write_text(MANUAL, encoding="utf-8")
    lib = Library(tmp_path / "index")
    lib.ingest([tmp_path / "docs"])
    items = [
        {"id": "f1", "set": "facts", "question": "How often should I water my tomato plants?",
         "gold_quote": "deep watering twice a week"},
        {"id": "f2", "set": "facts", "question": "How often should I water my tomato plants?",
         "gold_quote": "a sentence no passage holds"},
        {"id": "c1", "set": "followups", "question": "And when do I cut the shoots?",
         "history": [{"role": "user", "content": "How do I prune tomatoes?"}], "gold_quote": "side shoots"},
        {"id": "u1", "set": "unanswerable", "question": "How do I grow rice?"},
    ]
    ranks = bench.depth_ranks(lib, items, "hybrid", 3)
    by_id = {r["id"]: r for r in ranks}
    assert set(by_id) == {"f1", "f2", "c1"}  # unanswerable questions have no gold
    assert by_id["f1"]["rank"] == 1 and by_id["f1"]["dense_rank"] == 1
    assert by_id["f2"]["rank"] is None and by_id["f2"]["dense_rank"] is None
    assert by_id["c1"]["rank"] is not None
    lines = bench.depth_lines(ranks, [1, 3], "hybrid")
    assert lines[0].startswith("facts (2): gold in the hybrid top 1 / 3: 0.500 / 0.500; dense alone: 0.500 / 0.500")
    table = bench.depth_table({"garden": ranks}, [1, 3]).splitlines()
    assert table[0].count("|") == 2 + 8 + 1  # document, n, 2 kinds x 2 modes x 2 depths
    assert table[2].startswith("| garden | 3 | 0.500 | 0.500 | 0.500 | 0.500 |")
    assert table[3].startswith("| overall | 3 |")
