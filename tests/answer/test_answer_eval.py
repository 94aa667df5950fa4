"""Answer scoring: Unicode folding, fact hits, gold quotes in passages, loops and cut answers."""
from __future__ import annotations

import json

from rag import answer_eval as ae


def test_fold_makes_pdf_typography_plain():
    assert ae.fact_hit("Use \u2212\u2212enable\u2013R\u2010shlib", ["--enable-R-shlib"])
    assert ae.fact_hit("set \u201cLANG\u201d", ['"lang"'])
    assert not ae.fact_hit("use the installer", ["--enable-R-shlib"])
    assert ae.fact_hit("run ssh -R 8080:localhost:80", ["-R"], match_case=True)
    assert not ae.fact_hit("the -r hostname option", ["-R"], match_case=True)  # one-letter options keep their case
    assert not ae.fact_hit("-Rfoo", ["-R"], match_case=True)


def test_a_quote_split_by_a_passage_boundary_still_mostly_counts():
    quote = "The tarballs are available from https://stat.ethz.ch/R/daily/."
    assert ae.holds_quote("Nightly builds. The tarballs are available from https://stat.ethz.ch/R/daily/. Also", quote)
    assert ae.holds_quote("The tarballs are available from https://stat.ethz.ch/R/", quote)
    assert not ae.holds_quote("Tarballs of releases are on CRAN.", quote)


def test_loops_and_cut_answers_are_detected():
    assert ae.repeats_a_sentence("It exits on Ctrl-D now. Fine. It exits on Ctrl-D now.")
    assert not ae.repeats_a_sentence("It exits on Ctrl-D now. Type q() to quit.")
    assert ae.cut_mid_word("Run make insta")
    assert not ae.cut_mid_word("Run make install [1].")


def test_score_counts_per_set_and_split(tmp_path):
    (tmp_path / "facts.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": "f1", "question": "q", "must_include_any": ["R_LIBS_USER"], "gold_quote": "set R_LIBS_USER to a folder",
         "page": 3, "split": "dev"},
        {"id": "f2", "question": "q", "must_include_any": ["TMPDIR"], "gold_quote": "R uses TMPDIR for scratch",
         "page": 4, "split": "held-out"}]))
    (tmp_path / "unanswerable.jsonl").write_text(json.dumps({"id": "u1", "question": "q", "split": "dev"}))
    run = {"f1": {"answer": "Set R_LIBS_USER [1].", "abstained": False, "cited": [0],
                  "passages": [{"text": "You can set R_LIBS_USER to a folder of your own."}], "first_text_s": 0.2},
           "f2": {"answer": "Not in your documents.", "abstained": True, "passages": [], "cited": []},
           "u1": {"answer": "Not in your documents.", "abstained": True}}
    f = ae.score(tmp_path, run)
    assert f["facts"]["all"]["fact_hit"] == 0.5 and f["facts"]["dev"]["gold_cited"] == 1.0
    assert f["facts"]["held-out"]["false_abstention"] == 1.0
    assert f["unanswerable"]["all"]["abstained"] == 1
    assert "| facts | dev | 1 |" in ae.table({k: v for k, v in f.items() if k != "items"})
