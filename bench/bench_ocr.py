"""Scanned documents (issue 15): how fast OCR reads pages here, and how well questions find passages in
an OCR'd copy of a document compared with the same pages with their text layer.

    python -m rag bench ocr [--pages 30-49] [--dpi 300] [--write-benchmarks]

1. Two copies of the same R FAQ pages (``../shared/datasets/rfaq/R-FAQ.pdf``): the text copy (the pages
   cut out with pypdf) and a scan (``scripts/scan_pdf.py``: each page rendered at ``--dpi``, grey JPEG,
   no text layer).
2. OCR speed: the scan loaded by the loader (``loaders.load``, render + Tesseract) reading one page at a
   time and two at once (what one loader process does on 2 cores), pages per second; then the whole
   ingest of the scan through the Library (loader process, OCR, chunking, embedding, saving).
   Word agreement: each page's words as OCR read them against the text layer's (difflib ratio).
3. Retrieval: the questions whose gold section lies on those pages (the FAQ's own ``rfaq/queries.jsonl``
   and our paraphrased ``bench/data/rfaq-paraphrased``), asked of each copy indexed alone with the chat's
   defaults (``rag.evaluation.retrieval_run``, top 5), scored by ``../shared/tools/gold_hit.py``.
   Target: hit@3 on the OCR'd copy >= 0.9 x the text copy's.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
from benchlib import command_line, machine_note, report, today  # noqa: E402

SECTION = "Scanned documents (issue 15)"
DATA = REPO.parent / "shared" / "datasets"
GOLD_HIT = DATA.parent / "tools" / "gold_hit.py"
PARAPHRASED = REPO / "bench" / "data" / "rfaq-paraphrased" / "queries.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def subset_beir(rfaq: Path, queries: Path, first: int, last: int, dest: Path) -> tuple[Path, int]:
    """A BEIR folder of the questions whose gold section starts on pages first..last-1 (the last page's
    section may go on past the copy)."""
    corpus = [o for o in read_jsonl(rfaq / "corpus.jsonl") if first <= int(o.get("page") or 0) < last]
    golds = {o["_id"] for o in corpus}
    qs = [q for q in read_jsonl(queries) if q["_id"].removeprefix("q-") in golds]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "corpus.jsonl").write_text("".join(json.dumps(o) + "\n" for o in corpus), encoding="utf-8")
    (dest / "queries.jsonl").write_text("".join(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n" for q in qs),
                                        encoding="utf-8")
    (dest / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q['_id']}\t{q['_id'].removeprefix('q-')}\t1\n" for q in qs), encoding="utf-8")
    return dest, len(qs)


def score(run: dict, beir: Path, out: Path) -> dict:
    out.write_text(json.dumps(run), encoding="utf-8")
    done = subprocess.run([sys.executable, str(GOLD_HIT), str(out), str(beir), "--quiet"], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def word_agreement(text_doc, ocr_doc) -> float:
    """Mean over pages of difflib's ratio between the page's words in the two copies."""
    ratios = []
    for page in range(1, text_doc.pages + 1):
        a = words(" ".join(b.text for b in text_doc.blocks if b.page == page))
        b = words(" ".join(b.text for b in ocr_doc.blocks if b.page == page))
        if a:
            ratios.append(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio())
    return sum(ratios) / len(ratios) if ratios else 0.0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default="30-49", help="R FAQ pages, first-last (default 30-49: 20 pages)")
    ap.add_argument("--dpi", type=int, default=300, help="the scan's resolution")
    ap.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = ap.parse_args()
    first, last = (int(x) for x in args.pages.split("-"))
    rfaq = DATA / "rfaq"
    for need in (rfaq / "R-FAQ.pdf", GOLD_HIT, PARAPHRASED):
        if not need.exists():
            print(f"missing: {need}", file=sys.stderr)
            return 2
    from rag.evaluation import retrieval_run
    from rag.ingest import loaders
    from rag.ingest.loaders import OcrOptions

    sys.path.insert(0, str(REPO / "scripts"))
    from scan_pdf import scan  # noqa: E402
    import pypdf

    work = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    n_pages = last - first + 1
    text_pdf, scan_pdf = work / "rfaq-text.pdf", work / "rfaq-scan.pdf"
    reader, writer = pypdf.PdfReader(str(rfaq / "R-FAQ.pdf")), pypdf.PdfWriter()
    for p in range(first, last + 1):
        writer.add_page(reader.pages[p - 1])
    with open(text_pdf, "wb") as f:
        writer.write(f)
    t0 = time.perf_counter()
    scan(rfaq / "R-FAQ.pdf", scan_pdf, list(range(first, last + 1)), dpi=args.dpi)
    scan_s = time.perf_counter() - t0
    print(f"copies: {n_pages} pages; scan made in {scan_s:.1f} s ({scan_pdf.stat().st_size / 1e6:.1f} MB)", flush=True)

    t0 = time.perf_counter()
    text_doc = loaders.load(text_pdf)
    text_load_s = time.perf_counter() - t0
    speeds, cpu = {}, {}
    ocr_doc = None
    for jobs in (1, 2):
        t0, c0 = time.perf_counter(), _children_cpu()
        ocr_doc = loaders.load(scan_pdf, ocr=OcrOptions(max_pages=10_000, jobs=jobs))
        speeds[jobs] = n_pages / (time.perf_counter() - t0)
        cpu[jobs] = (_children_cpu() - c0) / n_pages  # pdftoppm + tesseract, whatever else the machine runs
        print(f"OCR, {jobs} page(s) at once: {speeds[jobs]:.2f} pages/s, {cpu[jobs]:.2f} CPU s/page", flush=True)
    assert ocr_doc is not None and ocr_doc.ocr_pages == list(range(1, n_pages + 1)), ocr_doc.ocr_pages
    agreement = word_agreement(text_doc, ocr_doc)

    sets = {"FAQ headings (rfaq/queries.jsonl)": rfaq / "queries.jsonl", "paraphrased (bench/data)": PARAPHRASED}
    results: dict[str, dict[str, dict]] = {}
    ingest_s: dict[str, float] = {}
    for copy, pdf in (("text", text_pdf), ("OCR", scan_pdf)):
        index = work / f"index-{copy}"
        for label, queries in sets.items():
            beir, n = subset_beir(rfaq, queries, first, last, work / f"beir-{copy}-{len(results.get(copy, {}))}")
            run, info = retrieval_run([str(pdf)], beir / "queries.jsonl", k=5, index_dir=index, log=lambda *_: None)
            ingest_s.setdefault(copy, info["ingest_s"])  # the first call indexes; the second finds it unchanged
            got = score(run, beir, work / f"run-{copy}.json")
            results.setdefault(copy, {})[label] = got
            print(f"{copy:4s} {label}: n={got['n']} hit@1 {got['hit@1']:.3f} hit@3 {got['hit@3']:.3f} "
                  f"hit@5 {got['hit@5']:.3f} MRR@5 {got['MRR@5']:.3f}", flush=True)

    ratios = {label: (results["OCR"][label]["hit@3"] / results["text"][label]["hit@3"]
                      if results["text"][label]["hit@3"] else 0.0) for label in sets}
    lines = [f"Run {today()}: `{command_line('ocr', sys.argv[1:])}`. {machine_note()}.", "",
             f"R FAQ pages {first}-{last} ({n_pages} pages), two copies: the text layer (pages cut with pypdf) and a "
             f"scan without one (`scripts/scan_pdf.py`: {args.dpi} dpi, grey JPEG, {scan_pdf.stat().st_size / 1e6:.1f} MB). "
             "Tesseract 5.3 (Debian `tesseract-ocr`, `eng`), pages rendered by `pdftoppm`.", "",
             "**OCR speed** (`loaders.load` of the scan: render + Tesseract, `OMP_THREAD_LIMIT=1` per process; "
             "CPU time is the commands' own, which the machine's other work hardly changes):", "",
             "| pages read at once | pages/s | s/page | CPU s/page |", "|---|---|---|---|",
             *[f"| {j} | {v:.2f} | {1 / v:.2f} | {cpu[j]:.2f} |" for j, v in speeds.items()],
             "", f"On {os.cpu_count()} idle cores that CPU time allows about "
             f"**{min(2, os.cpu_count() or 1) / cpu[2]:.2f} pages/s** reading 2 pages at once "
             f"({1 / cpu[1]:.2f} pages/s one at a time).", "",
             f"Whole ingest through the Library (one loader process reading 2 pages at once, chunking, embedding, "
             f"saving): {ingest_s['OCR']:.1f} s for the scan, {n_pages / ingest_s['OCR']:.2f} pages/s; the text copy "
             f"{ingest_s['text']:.1f} s. Loading the text copy alone: {text_load_s:.2f} s (its pages are never "
             f"rendered). Words OCR read that match the text layer (difflib ratio, mean over pages): "
             f"**{agreement:.3f}**.", "",
             "**Retrieval** (the chat's defaults, top 5, scored by `gold_hit.py`; questions whose gold section starts "
             f"on pages {first}-{last - 1}):", "",
             "| questions | copy | n | hit@1 | hit@3 | hit@5 | MRR@5 |", "|---|---|---|---|---|---|---|"]
    for label in sets:
        for copy in ("text", "OCR"):
            r = results[copy][label]
            lines.append(f"| {label} | {copy} | {r['n']} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['hit@5']:.3f} | "
                         f"{r['MRR@5']:.3f} |")
    lines += ["", "hit@3 of the OCR'd copy / the text copy's (target >= 0.9): " + "; ".join(
        f"{label}: **{ratio:.2f}**" for label, ratio in ratios.items()) + ".", "",
              "Measured by hand (2026-11-30, not re-measured by this script): **tables in PDFs are left as text.** "
              "pdfplumber 0.11.10's ruled-table search (`page.find_tables()`) took 117-146 ms a page on R-FAQ, "
              "R-admin and gnuplot (pypdf's text extraction: ~15 ms a page), and the only tables it found there "
              "(gnuplot's, ruled above and below the header only) came out as a single column, so rows with "
              "column names could not be made from them."]
    print("\n".join(lines))
    summary = {"pages": n_pages, "dpi": args.dpi, "ocr_pages_per_s_1": round(speeds[1], 3),
               "ocr_pages_per_s_2": round(speeds[2], 3), "ocr_cpu_s_per_page": round(cpu[1], 3), "ingest_scan_s": ingest_s["OCR"],
               "ingest_text_s": ingest_s["text"], "word_agreement": round(agreement, 4),
               "hit3_ratio": {k: round(v, 3) for k, v in ratios.items()},
               "results": {c: {k: {m: v[m] for m in ("n", "hit@1", "hit@3", "hit@5", "MRR@5")} for k, v in r.items()}
                           for c, r in results.items()}}
    return report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
