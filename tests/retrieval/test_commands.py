"""The command line: index / query / stats / remove, and `run` on a small real PDF scored with gold_hit.py."""
from __future__ import annotations

import json
import subprocess
import sys

from rag.cli import main

from .conftest import GOLD_HIT, cut_pdf, need


def test_index_query_stats_remove(tmp_path, capsys, small_pdf, embedder):
    idx = str(tmp_path / "index")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    assert main(["index", str(docs), str(small_pdf), "--index-dir", idx, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "added" in out and "tea.md" in out and "FAILED" in out and "bad.pdf" in out
    assert "2 added, 0 updated, 0 unchanged, 1 failed" in out

    assert main(["query", "What temperature for green tea?", "-k", "2", "--index-dir", idx]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#1") and "tea.md" in out.splitlines()[0]
    assert main(["query", "machines R runs on", "-k", "1", "--mode", "dense", "--json", "--index-dir", idx]) == 0
    hit = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hit["source"].endswith("rfaq-basics.pdf") and hit["rank"] == 1
    assert hit["heading"] == "2.2 What machines does R run on?" and hit["page"] in (1, 2)  # the section spans both

    assert main(["stats", "--files", "--index-dir", idx]) == 0
    out = capsys.readouterr().out
    assert "files:  2" in out and "rfaq-basics.pdf" in out

    assert main(["remove", str(docs / "tea.md"), "--index-dir", idx]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["remove", str(docs / "tea.md"), "--index-dir", idx]) == 1
    assert main(["index", str(docs / "tea.md"), "--index-dir", idx, "--quiet"]) == 0
    assert "1 added" in capsys.readouterr().out


def test_run_command_on_a_real_pdf_scored_with_gold_hit(tmp_path, capsys, datasets, embedder):
    rfaq = need(datasets / "rfaq")
    pdf = cut_pdf(rfaq / "R-FAQ.pdf", [7, 8, 9, 10], tmp_path / "rfaq-part.pdf")  # sections 2.1 to 2.7
    wanted = ["2.1", "2.2", "2.3", "2.4", "2.6", "2.7"]
    beir = tmp_path / "beir"
    beir.mkdir()
    queries = [json.loads(line) for line in open(rfaq / "queries.jsonl", encoding="utf-8")]
    corpus = [json.loads(line) for line in open(rfaq / "corpus.jsonl", encoding="utf-8")]
    queries = [q for q in queries if q["_id"].removeprefix("q-rfaq-") in wanted]
    assert len(queries) == len(wanted)
    with open(beir / "queries.jsonl", "w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    with open(beir / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(c) + "\n" for c in corpus if c["_id"].removeprefix("rfaq-") in wanted)
    with open(beir / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"q-rfaq-{w}\trfaq-{w}\t1\n" for w in wanted)
    out_file = tmp_path / "run.json"
    assert main(["run", "--docs", str(pdf), "--queries", str(beir / "queries.jsonl"), "-k", "5",
                 "--out", str(out_file)]) == 0
    printed = capsys.readouterr().out
    info = json.loads(printed.strip().splitlines()[-1])
    assert "average" in printed and "embedder tokens" in printed and 0 < info["avg_chunk_tokens"] <= 254
    assert info["ingest_s"] > 0 and info["query_ms_mean"] > 0
    run = json.loads(out_file.read_text())
    assert set(run) == {q["_id"] for q in queries} and all(1 <= len(v) <= 5 for v in run.values())
    scored = subprocess.run([sys.executable, str(need(GOLD_HIT)), str(out_file), str(beir), "--quiet"],
                            capture_output=True, text=True, check=True)
    summary = json.loads(scored.stdout.strip().splitlines()[-1])
    assert summary["n"] == len(wanted)
    assert summary["hit@1"] >= 0.8 and summary["hit@3"] == 1.0, summary


def test_folder_indexing_accounts_for_every_file(tmp_path, capsys, embedder):
    """Every file of a folder is added, unchanged, failed or skipped with its reason; a link that leads
    outside the folder is not followed."""
    idx = str(tmp_path / "index")
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    outside.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n")
    (docs / "sub" / "coffee.txt").write_text("Coffee is brewed at 93 degrees for four minutes.\n")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    (docs / "photo.xyz").write_bytes(b"\x00\x01")
    (docs / "notes.docx").write_bytes(b"PK\x03\x04")  # a Word document cut short: fails, with the reason
    (docs / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (docs / ".hidden.md").write_text("# Secret\n\nNot for the library.\n")
    (outside / "private.md").write_text("# Private\n\nOutside the indexed folder.\n")
    (docs / "link.md").symlink_to(outside / "private.md")
    (docs / "link-dir").symlink_to(outside, target_is_directory=True)
    assert main(["index", str(docs), "--index-dir", idx, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 added, 0 updated, 0 unchanged, 2 failed, 5 skipped" in out, out
    assert "skipped    2 file(s), unsupported type" not in out  # one line per reason and type
    assert "unsupported type (.xyz): photo.xyz" in out and "unsupported type (.xlsx): sheet.xlsx" in out, out
    assert "notes.docx: the file is damaged" in out, out
    assert "hidden: .hidden.md" in out, out
    assert "skipped    2 file(s), a link that leads outside the folder (not followed): link-dir, link.md" in out, out
    assert main(["stats", "--files", "--index-dir", idx]) == 0
    listed = capsys.readouterr().out
    assert "private.md" not in listed and ".hidden.md" not in listed and "coffee.txt" in listed, listed
    # the same folder again: everything accounted for, nothing added
    assert main(["index", str(docs), "--index-dir", idx, "--quiet"]) == 0
    assert "0 added, 0 updated, 2 unchanged, 2 failed, 5 skipped" in capsys.readouterr().out
