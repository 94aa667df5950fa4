"""Lexical terms and hybrid fusion: identifier parts, the derivational stemmer, and the fusion
weight that follows each retriever's margin. Real BM25 index and real FAISS index (vectors built by
hand: the point here is the arithmetic, the real model is covered by test_library)."""
from __future__ import annotations

import numpy as np

from rag.search import DenseIndex, LexicalIndex, fuse, rank
from rag.search.lexical import stem, tokenize


def test_identifiers_give_their_parts_and_stems_meet():
    toks = tokenize("Use Py_BuildValue() or getElementById with an HTTPServer")
    for t in ("py_buildvalue", "build", "value", "getelementbyid", "element", "http"):
        assert t in toks, (t, toks)
    assert "with" not in toks and "an" not in toks  # stop words
    assert stem("assignments") == stem("assignment") == "assign"
    assert stem("replacement") == "replace"
    assert stem("cases") == stem("case") == "case"  # no final-e removal
    assert stem("R") == "R" and tokenize("What is R?") == ["r"]
    # British spellings meet American ones (users write "optimisation", manuals "optimization")
    assert stem("optimisation") == stem("optimization") and stem("optimised") == stem("optimized")
    assert stem("analyse") == stem("analyze") and stem("organisations") == stem("organization")
    assert stem("noise") == "noise" and stem("basis") == "basis"  # too short a stem, or not the suffix


def test_british_spelling_finds_american_passage():
    lx = LexicalIndex()
    lx.add([1, 2], ["Do not use -O3 optimization with gcc 11.", "Packages are installed in the library tree."])
    ids, scores = lx.top("which optimisation level should I avoid", 2)
    assert list(ids[:1]) == [1] and scores[0] > 0


def test_identifier_part_finds_passage():
    lx = LexicalIndex()
    lx.add([1, 2], ["Call Py_BuildValue with a format string.", "Tuples are immutable sequences."])
    ids, scores = lx.top("how do I build a value from C", 2)
    assert list(ids) == [1]


def test_a_question_naming_an_option_finds_that_options_passage():
    """Read by eye on the ssh man pages: "What does the -A option do?" lost its only telling word ("-A" read as
    the stop word "a") and quoted unrelated sentences. An option is a term of its own, a one-letter one with its
    case; "x-y" and a "- item" are not options."""
    assert sorted(tokenize("What does the -A option do?")) == ["-A", "option"]
    assert sorted(tokenize("--Force it")) == ["--force", "force"] and "-o" in tokenize("ssh -o Port=22")
    assert not [t for t in tokenize("x-y co-op - item e-mail -5") if t.startswith("-")]
    lx = LexicalIndex()
    lx.add([1, 2, 3, 4], ["-a Archive mode: keep the permissions of the files copied.",
                          "-A Enables forwarding of connections from an authentication agent.",
                          "The options are as follows, each with what it does.",
                          "An option given on the command line overrides the same option in the configuration file."])
    ids, _ = lx.top("What does the -A option do?", 3)
    assert list(ids[:1]) == [2], ids
    ids, _ = lx.top("what is -a for", 3)
    assert list(ids[:1]) == [1], ids


def _onehot(i: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def test_margin_moves_the_lexical_weight():
    dense = np.array([0.50, 0.49, 0.48, 0.10], np.float32)  # dense: a three-way tie at the top
    lexical = np.array([0.0, 0.0, 9.0, 0.0], np.float32)    # lexical: one clear winner
    fixed = fuse(None, dense, lexical, dense_weight=0.8, gap=0.0)
    moving = fuse(None, dense, lexical, dense_weight=0.8, gap=0.3)
    assert moving[2] - moving[0] > fixed[2] - fixed[0] > 0
    # the other way round: a clear dense winner keeps its place against a lexical near-tie
    dense2 = np.array([0.9, 0.3, 0.3, 0.3], np.float32)
    lexical2 = np.array([5.0, 5.2, 0.0, 0.0], np.float32)
    assert np.argmax(fuse(None, dense2, lexical2, dense_weight=0.8, gap=0.3)) == 0
    # the lexical weight stays within [0, 0.5]: equal margins give exactly the fixed weights
    same = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    assert np.allclose(fuse(None, same, same * 3, 0.8, gap=0.3), fuse(None, same, same * 3, 0.8, gap=0.0))


def test_rank_hybrid_uses_both_and_respects_k():
    d = DenseIndex(8)
    d.add(np.array([10, 11, 12, 12]), np.stack([_onehot(0), _onehot(1), _onehot(2), _onehot(3)]))
    lx = LexicalIndex()
    lx.add([10, 11, 12], ["alpha words here", "beta Py_BuildValue words", "gamma words"])
    q = (_onehot(0) * 0.7 + _onehot(1) * 0.69).astype(np.float32)
    q /= np.linalg.norm(q)
    out = rank(q, "build value", d, lx, k=2, mode="hybrid")
    assert [i for i, _, _ in out] == [11, 10]  # lexical evidence breaks the dense near-tie
    assert set(out[0][2]) == {"dense", "lexical"}
