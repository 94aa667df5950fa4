"""The sentence check catches claims the passages do not make (issue 26, item 5): real sentences written by
SmolLM2-135M at default settings, labelled by reading them against the passages it was given
(bench/data/claims), and the issue's own example against the real R FAQ passage. Real embedding model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.check import check, salient
from rag.schema import Chunk, Hit

CLAIMS = Path(__file__).resolve().parents[2] / "bench" / "data" / "claims"

# R FAQ 2.1 and 2.13 (rfaq/R-FAQ.pdf in the shared datasets), as the app's PDF loader gives them
R_ORIGIN = ("Additional modules (“add-on packages”) are available for a variety of specific purposes (see Chapter 5 "
            "[R Add-On Packages], page 21). R was initially written by Ross Ihaka and Robert Gentleman at the "
            "Department of Statistics of the University of Auckland in Auckland, New Zealand. In addition, a large "
            "group of individuals has contributed to R by sending code and bug reports. Since mid-1997 there has "
            "been a core group (the “R Core Team”) who can modify the R source code archive.")
R_FOUNDATION = ("The R Foundation is a not for profit organization working in the public interest. It was founded "
                "by the members of the R Core Team in order to provide support for the R project and other "
                "innovations in statistical computing, provide a reference point for individuals, institutions or "
                "commercial enterprises that want to support or interact with the R development community, and to "
                "hold and administer the copyright of R software and documentation. See "
                "https://www.R-project.org/foundation/ for more information.")


def hits(*texts: str) -> list[Hit]:
    return [Hit(Chunk(i, t, "/docs/R-FAQ.pdf", page=i), 1.0 - i / 10, i + 1) for i, t in enumerate(texts)]


def test_the_issues_invented_names_are_marked(embedder):
    """Sentences that share most words with a passage but name what it never says (the issue's example)."""
    answer = ("R is a free and open source programming language created by the University of Vienna [1]. "
              "The R Foundation is a charitable trust funded by the United States government [2]. "
              "R was initially written by Ross Ihaka and Robert Gentleman at the University of Auckland [1].")
    checked = check(embedder, answer, hits(R_ORIGIN, R_FOUNDATION), "Who wrote R and who looks after it?")
    assert not checked[0].supported and "vienna" in checked[0].invented, checked[0]
    assert not checked[1].supported and {"united", "states"} <= set(checked[1].invented), checked[1]
    assert checked[2].supported and checked[2].cites == [1], checked[2]


def test_a_name_must_stand_in_the_passage_it_is_cited_with(embedder):
    """"Vienna" is in the question's passages (a citation entry), but not in the passage the sentence draws
    on: a citation cannot move to a passage that does not support the rest of it."""
    cite = ("To cite R in publications, use @Manual{, title = {R: A Language and Environment for Statistical "
            "Computing}, author = {{R Core Team}}, organization = {R Foundation for Statistical Computing}, "
            "address = {Vienna, Austria}, year = YEAR, url = {https://www.R-project.org} }")
    answer = "R was initially written by Ross Ihaka at the University of Vienna [1]."
    checked = check(embedder, answer, hits(R_ORIGIN, cite))
    assert not checked[0].supported and checked[0].invented == [], checked[0]


def test_flags_keep_their_case():
    assert "-L" in salient("Use -L to forward a local port.") and "-l" not in salient("Use -L to forward.")
    assert {"powershell", "1997", "x86_64", "grep-sil", "sshbin@*"} <= salient(
        "Run PowerShell on x86_64 since 1997, or **GREP-SIL**, or sshbin@*")
    # a capitalised first word may be any word: left out ("Here"); further in, it is a name
    assert salient("Here is how") == set() and salient("It was written in Vienna") == {"vienna"}


def _labelled() -> list[tuple[dict, dict]]:
    answers = {json.loads(line)["id"]: json.loads(line)
               for line in (CLAIMS / "answers.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    rows = [json.loads(line) for line in (CLAIMS / "labels.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [(r, answers[r["id"]]) for r in rows]


# real SmolLM2 sentences from the dev documents, labelled unsupported by reading (bench/data/claims/labels.jsonl)
CAUGHT = [("ssh-f08", 0), ("ssh-f10", 14), ("charis-f05", 1), ("charis-f06", 4), ("charis-f03", 3),
          ("charis-c05", 0)]


@pytest.mark.parametrize("aid, index", CAUGHT)
def test_real_unsupported_sentences_are_marked(embedder, aid, index):
    (row, answer), = [(r, a) for r, a in _labelled() if (r["id"], r["index"]) == (aid, index)]
    assert row["label"] == "unsupported", row
    checked = check(embedder, answer["answer"], hits(*answer["passages"]), answer["query"], answer["quoted"])
    assert not checked[index].supported and not checked[index].repeats, (row["sentence"], row["reason"])


def test_real_supported_sentences_pass(embedder):
    """The labelled supported sentences of two answers are not marked (a mark there would be wrong)."""
    for aid in ("ssh-f04", "charis-f05"):
        (answer,) = {a["id"]: a for _, a in _labelled() if a["id"] == aid}.values()
        checked = check(embedder, answer["answer"], hits(*answer["passages"]), answer["query"], answer["quoted"])
        for row, _ in [x for x in _labelled() if x[0]["id"] == aid and x[0]["label"] == "supported"]:
            assert checked[row["index"]].supported, row["sentence"]


def test_an_answer_with_nothing_supported_is_one_line(embedder):
    """Item 4: where the model adds nothing the check supports, the user reads one line saying so, not a list
    of marked sentences (nor a line explaining a mark that is not shown); an answer with one supported claim
    keeps its sentences, marked where unsupported, and the line saying what the mark means."""
    from rag.answer.check import NOTHING_ADDED, render

    answers = {a["id"]: a for _, a in _labelled()}
    for aid, nothing in (("charis-c03", True), ("charis-f06", True), ("ssh-f04", False)):
        a = answers[aid]
        text = render(check(embedder, a["answer"], hits(*a["passages"]), a["query"], a["quoted"]))
        assert (text == NOTHING_ADDED) == nothing, text
        assert ("⚠️ not found in your documents" in text) != nothing, text
    assert "`~/.ssh/config`" in text and "⚠️" in text.split("\n\n")[0], text


def test_a_lead_in_that_only_names_what_the_question_names_does_not_keep_unsupported_steps(embedder):
    """Read by eye on writer2latex: "Here's how to install Writer2LaTeX as a LibreOffice extension:" then invented
    steps, every one marked. The lead-in names only what the question names, so the answer adds nothing the
    documents support: one line. A lead-in naming something the passage names and the question does not (the
    Extension Manager) still keeps the answer, marked."""
    from rag.answer.check import NOTHING_ADDED, render

    passage = ("Writer2LaTeX is installed with the Extension Manager of LibreOffice. Choose Tools - Extension Manager, "
               "click Add and select the file writer2latex.oxt.")
    question = "How do I install Writer2LaTeX as a LibreOffice extension?"
    steps = ("\n\n1. Install the librettleite package from your distribution.\n2. Create a new folder named Librarian "
             "for all the files of the installation.")
    lead_in = "Here's how to install Writer2LaTeX as a LibreOffice extension:"
    checked = check(embedder, lead_in + steps, hits(passage), question)
    assert [c.supported for c in checked if c.judged] == [False, False], checked
    assert render(checked).startswith(NOTHING_ADDED), render(checked)
    checked = check(embedder, "Here's how to do it with the Extension Manager:" + steps, hits(passage), question)
    assert not checked[0].judged and checked[0].supported and not checked[0].restates, checked[0]
    assert not render(checked).startswith(NOTHING_ADDED), render(checked)
