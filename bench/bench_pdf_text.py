"""PDF text a person can read (issue 26, item 3): the PDF loader's old text engine (pypdf) against the new one
(``rag.ingest.loaders.pdf_text``: PDFium, or poppler's pdftotext where PDFium drops a kerning) on every PDF
in ``../shared/datasets/pdfs``, the R FAQ, man pages set by groff at bench time and a one-line PDF whose font
names its ligature glyphs (``named_glyph_pdf``, as word processors write them).

    python -m rag bench pdftext [--man find tar ls] [--write-benchmarks]

The groff PDFs are made here from man pages Debian ships (``zcat /usr/share/man/man1/NAME.1.gz | groff -man
-Tpdf``; the ``groff`` package, not only ``groff-base``: ``make ocr`` installs it). Per document and engine:

- **ligatures**: characters U+FB00-U+FB06 ("ﬁ", "ﬂ", ...) in the text the engine gives, before any folding.
- **broken-word rate**: (split + glued) / words, on each engine's page text after NFKC and the loader's own
  line-end dehyphenation (``pdf_layout.vocabulary`` / ``dehyphenate``), so both are judged after the same steps.
  *Words*: white-space separated tokens, surrounding punctuation stripped, made of letters only (inner
  hyphens and apostrophes allowed), lower case. *The document's vocabulary*: the words that occur at least
  once outside a *joinable pair* (two words on one line with only white space between them whose
  concatenation is also a word of the text). *Split*: a joinable pair of which one half is not in the
  vocabulary ("e xamines": "xamines" never stands alone; "time zone" where the text also writes "timezone"
  and "zone" only after "time" counts too, the same for every engine). *Glued*: a word seen at most twice,
  not an identifier (no lower-to-upper case step: "dbReadTable"), that is vocabulary words of 2+ letters run
  together, the first two of which the text writes apart at least as often as it writes the word whole
  ("GNUfind": "GNU find"; "Ifthe").
- **ms per page**: extracting the text of every page, the file already opened by pypdf (new: with the check of
  the first pages' content streams that picks the engine); the median of ``--repeat`` runs.

Targets (issue 26): ligatures 0 and broken-word rate < 0.1 % with the new engine on every document.
"""
from __future__ import annotations

import argparse
import gzip
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
from benchlib import command_line, machine_note, report, today  # noqa: E402

SECTION = "PDF text (issue 26, item 3)"
DATA = REPO.parent / "shared" / "datasets"
MAN_DIR = Path("/usr/share/man/man1")
LIGATURES = re.compile("[\ufb00-\ufb06]")
_WORD = re.compile(r"^[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*$")
_CAMEL = re.compile(r"[a-z][A-Z]")
LIGATURE_LINE = b"The \x01les and \x02ags of the o\x03ce are listed in the settings."  # codes 1-3: /fi /fl /ffi
_LEAD, _TRAIL = "([{\"'\u2018\u201c<", ")]}\"'.,;:!?\u2019\u201d>"


def groff_pdf(name: str, dest: Path) -> Path:
    """``dest``/NAME.pdf set by groff from the man page /usr/share/man/man1/NAME.1.gz; SystemExit naming what is
    missing."""
    source = MAN_DIR / f"{name}.1.gz"
    if shutil.which("groff") is None:
        raise SystemExit("groff is not installed: install the Debian package `groff` (make ocr does)")
    if not source.exists():
        raise SystemExit(f"the man page {source} is missing (Debian ships it; a slim image may leave man pages out)")
    done = subprocess.run(["groff", "-man", "-Tpdf"], input=gzip.decompress(source.read_bytes()), capture_output=True)
    if done.returncode != 0 or not done.stdout.startswith(b"%PDF-"):
        err = done.stderr.decode("utf-8", "replace").strip()
        raise SystemExit(f"groff -Tpdf failed ({err[:200]}); `groff-base` alone has no PDF output: install the "
                         "Debian package `groff` (make ocr does)")
    out = dest / f"{name}.pdf"
    out.write_bytes(done.stdout)
    return out


def named_glyph_pdf(line: bytes) -> bytes:
    """A one-page PDF whose font has no ToUnicode map and names its glyphs (codes 1-3: /fi /fl /ffi), as
    word processors write them: a reader that maps glyph names gives U+FB01, U+FB02, U+FB03."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
               b"/Contents 4 0 R >>"]
    ops = b"BT /F1 12 Tf 72 700 Td (" + line + b") Tj ET"
    objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding << /Type /Encoding "
                   b"/BaseEncoding /WinAnsiEncoding /Differences [1 /fi 2 /fl 3 /ffi] >> >>")
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def _line_words(line: str) -> list[tuple[str, str]]:
    """(word stripped of punctuation, the token as written) for each white-space separated token."""
    return [(t.strip(_LEAD).rstrip(_TRAIL), t) for t in line.split()]


def broken_words(text: str) -> tuple[int, list[str], list[str]]:
    """(words, split pairs, glued words) of ``text`` as the module doc defines them."""
    text = unicodedata.normalize("NFKC", text)
    lines = [_line_words(ln) for ln in text.split("\n")]
    written = {w.lower(): t for ln in lines for w, t in ln if _WORD.match(w)}
    count = Counter(w.lower() for ln in lines for w, _ in ln if _WORD.match(w))
    pairs: list[tuple[str, str]] = []
    for ln in lines:
        for (a, ta), (b, tb) in zip(ln, ln[1:]):
            if _WORD.match(a) and _WORD.match(b) and ta.endswith(a) and tb.startswith(b):
                pairs.append((a.lower(), b.lower()))
    apart = Counter(pairs)
    joinable = Counter()
    for a, b in pairs:
        if a + b in count:
            joinable.update((a, b))
    vocab = {w for w, c in count.items() if c > joinable[w]}
    split = [f"{a} {b}" for a, b in pairs if a + b in count and (a not in vocab or b not in vocab)]

    def parts(word: str, depth: int = 0) -> str | None:
        """The first word of ``word`` read as 2+ vocabulary words run together, or None."""
        for i in range(2, len(word) - 1):
            head, rest = word[:i], word[i:]
            if head not in vocab:
                continue
            if rest in vocab and len(rest) >= 2:
                return head if apart[(head, rest)] >= max(1, count[word]) else None
            nxt = parts(rest, depth + 1) if depth < 4 and len(rest) >= 4 else None
            if nxt is not None and apart[(head, nxt)] >= max(1, count[word]):
                return head
        return None

    glued = [w for w, c in count.items() if c <= 2 and len(w) >= 5 and "-" not in w
             and not _CAMEL.search(written[w]) and parts(w) is not None for _ in range(c)]
    return sum(count.values()), split, glued


def pypdf_pages(reader) -> list[str]:
    """The old loader's text: pypdf's ``extract_text`` of each page."""
    return [(page.extract_text() or "") for page in reader.pages]


def measure(pdf: Path, repeat: int) -> dict:
    import pypdf

    from rag.ingest.loaders import pdf_layout, pdf_text

    data = pdf.read_bytes()
    reader = pypdf.PdfReader(pdf)
    n = len(reader.pages)
    def new() -> tuple[list[str], str]:
        pages, _, engine = pdf_text.page_texts(data, n, reader=reader)
        return pages, engine

    runs = {"pypdf (old)": lambda: (pypdf_pages(reader), "pypdf"), "new": new,
            "pdfium alone": lambda: (pdf_text.pdfium_pages(data, n)[0], "pdfium")}
    out = {"pages": n}
    for label, run in runs.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            pages, engine = run()
            times.append(time.perf_counter() - t0)
        lines = [pdf_text.fold(p).split("\n") for p in pages]
        vocab = pdf_layout.vocabulary(lines)
        text = "\n".join(pdf_layout.dehyphenate("\n".join(ln), vocab) for ln in lines)
        words, split, glued = broken_words(text)
        out[label] = {"engine": engine, "ligatures": sum(len(LIGATURES.findall(p)) for p in pages), "words": words,
                      "split": len(split), "glued": len(glued), "rate": (len(split) + len(glued)) / max(1, words),
                      "ms_per_page": 1000 * statistics.median(times) / n,
                      "examples": [*split[:4], *glued[:3]]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--man", nargs="+", default=["find", "tar"], help="man pages to set with groff (man1 names)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per engine and document (median)")
    ap.add_argument("--write-benchmarks", action="store_true", help=f"write the section '{SECTION}' of docs/BENCHMARKS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pdftext-"))
    pdfs = [groff_pdf(name, work) for name in args.man]
    (work / "named-glyphs.pdf").write_bytes(named_glyph_pdf(LIGATURE_LINE))
    pdfs.append(work / "named-glyphs.pdf")
    pdfs += [DATA / "rfaq" / "R-FAQ.pdf", *sorted((DATA / "pdfs").glob("*.pdf"))]
    missing = [p for p in pdfs if not p.exists()]
    if missing:
        print(f"missing: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    results = {}
    for pdf in pdfs:
        name = pdf.name if pdf.parent != work else "named-glyphs.pdf (made here)" if pdf.stem == "named-glyphs" \
            else f"{pdf.stem}(1), groff"
        results[name] = r = measure(pdf, args.repeat)
        print(f"{name}: {r['pages']} pages; " + "; ".join(
            f"{label} [{v['engine']}]: lig {v['ligatures']}, split {v['split']}, glued {v['glued']}, "
            f"rate {100 * v['rate']:.3f} %, {v['ms_per_page']:.1f} ms/page {v['examples']}"
            for label, v in r.items() if label != "pages"), flush=True)
    labels = ["pypdf (old)", "new", "pdfium alone"]
    met = all(r["new"]["ligatures"] == 0 and r["new"]["rate"] < 0.001 for r in results.values())
    lines = [f"Run {today()}: `{command_line('pdftext', sys.argv[1:])}`. {machine_note()}.", "",
             "Old: pypdf 7.1 `extract_text` (the loader before this change; its font cache, `pypdf_patch`, went with "
             "it, which took ~12 % off). New: `rag.ingest.loaders.pdf_text` (PDFium via pypdfium2; poppler's "
             "`pdftotext -raw` for a file whose first pages hold a `TJ` ending in a kerning and an empty string, which "
             "PDFium drops: groff's). Words, split and glued as `bench/bench_pdf_text.py` defines them (after NFKC and "
             "the loader's line-end dehyphenation, the same for each engine); a rate counts real compounds a document "
             "writes both ways too (\"time zone\" / \"timezone\"), the same for every engine.", "",
             "| document | pages | words | " + " | ".join(f"{lb}: ligatures / split / glued / rate / ms per page"
                                                        for lb in labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for name, r in results.items():
        lines.append(f"| {name} | {r['pages']} | {r['new']['words']} | " + " | ".join(
            f"{r[lb]['ligatures']} / {r[lb]['split']} / {r[lb]['glued']} / {100 * r[lb]['rate']:.3f} % / "
            f"{r[lb]['ms_per_page']:.1f}" + (" (poppler)" if r[lb]["engine"] == "poppler" else "")
            for lb in labels) + " |")
    lines += ["", f"Targets with the new engine, every document: ligatures 0, broken-word rate < 0.1 %: "
                  f"**{'met' if met else 'not met'}**.", "",
              "Measured by hand (2026-12-06, before and after this change, not re-measured by this script): R FAQ "
              "gold_hit, `python -m rag run --docs ../shared/datasets/rfaq/R-FAQ.pdf --queries Q -k 5 --out RUN.json` "
              "+ `python3 ../shared/tools/gold_hit.py RUN.json ../shared/datasets/rfaq`: the FAQ's headings "
              "(`rfaq/queries.jsonl`) hit@1 / hit@3 / hit@5 / MRR@5 **.944 / 1 / 1 / .972** before and after; the "
              "paraphrased set (`bench/data/rfaq-paraphrased`) **.831 / .944 / .972 / .889** before and after "
              "(166 passages both times). `rag eval --dataset ../shared/datasets/rfaq` indexes the corpus entries "
              "written as Markdown, not the PDF, so this change cannot move it."]
    print("\n".join(lines))
    summary = {"met": met, "documents": {name: {lb: {k: (round(v, 5) if isinstance(v, float) else v)
                                                       for k, v in r[lb].items() if k != "examples"}
                                                  for lb in labels} for name, r in results.items()}}
    return report(SECTION, lines, summary, args.write_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
