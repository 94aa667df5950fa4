"""Answer quality: score a RUN.json of answers against a question set.

A set is a folder with ``facts.jsonl`` (``{"id", "question", "must_include_any", "gold_quote",
"page"}``), ``followups.jsonl`` (the same plus ``history``), ``unanswerable.jsonl`` (``{"id",
"question"}``) and ``documents.txt`` (document paths, relative to the datasets folder or absolute).
Any line may carry ``"split": "dev" | "held-out"``; figures are given per split and for all.
Several sets (one per document, e.g. ``bench/data/unseen/*``) are reported a row per document plus an
overall row (``documents_table``).

RUN.json (written by ``python -m rag run --answer``) maps each id to ``{"answer", "abstained",
"query", "passages": [{"text", "file", "page", "score"}], "cited": [passage indexes], "first_text_s",
"ttft_s", "total_s", ...}``.

Text is compared after Unicode folding (PDFs print '−' for '-', curly quotes, ligatures, non-breaking
spaces), case-insensitively.
"""
from __future__ import annotations

import json
import re
import statistics
import unicodedata
from pathlib import Path

SETS = ("facts", "followups", "unanswerable")
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u00a0": " ", "\u00ad": None, "\u200b": None,
})
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[0-9a-z]+")
# a sentence end followed by whitespace: what splits an answer into sentences for the loop check
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# a quote's citation "(R-admin.pdf, p. 6)" (or "(scan.pdf, p. 3 (OCR))"), the check's ⚠️ marks and their legend: not sentences
_CITATION = re.compile(r"\([^()\n]{1,200}?, p\. \d+(?: \(OCR\))?\)|⚠️|\n\*⚠️ not found in your documents[^\n]*\*")


def fold(text: str, lower: bool = True) -> str:
    """NFKC, dashes/quotes/spaces made plain, lower case (unless not ``lower``), whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "").translate(_FOLD)
    return _SPACE.sub(" ", text.lower() if lower else text).strip()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def fact_hit(answer: str, must_include_any: list[str], match_case: bool = False) -> bool:
    """One of the strings is in the answer (folded); ``match_case`` (a row's ``"must_match_case": true``,
    for one-letter options such as ssh's ``-L`` and ``-l``): with its case, as a whole token."""
    if not match_case:
        a = fold(answer)
        return any(fold(m) in a for m in must_include_any if m.strip())
    a = fold(answer, lower=False)
    return any(re.search(r"(?<![\w-])" + re.escape(fold(m, lower=False)) + r"(?!\w)", a)
               for m in must_include_any if m.strip())


def holds_quote(passage: str, quote: str, min_share: float = 0.6) -> bool:
    """The passage holds the gold quote: all of it (words in order), or at least ``min_share`` of its
    word 3-grams (a quote cut by a passage boundary still mostly counts)."""
    q, p = words(quote), words(passage)
    if not q:
        return False
    if " ".join(q) in " ".join(p):
        return True
    if len(q) < 3:
        return False
    grams = {tuple(q[i:i + 3]) for i in range(len(q) - 2)}
    have = {tuple(p[i:i + 3]) for i in range(len(p) - 2)}
    return len(grams & have) / len(grams) >= min_share


def repeats_a_sentence(answer: str) -> bool:
    """Some sentence of at least four words occurs twice (the small model's loop)."""
    seen: set[str] = set()
    for s in _SENTENCE.split(_CITATION.sub("", answer or "")):
        key = " ".join(words(s))
        if len(key.split()) >= 4:
            if key in seen:
                return True
            seen.add(key)
    return False


def cut_mid_word(answer: str) -> bool:
    """The text stops inside a word (a length limit cut it without the app ending it cleanly)."""
    text = _CITATION.sub("", answer or "").rstrip()
    if text.endswith("```") or text.count("```") % 2:
        return False  # ends in a code block: code lines need no full stop
    return bool(text) and text[-1].isalnum() and not re.search(r"[.!?:;)\]`'\"*]\s*\S*$", text[-40:])


def read_set(folder: str | Path) -> dict[str, list[dict]]:
    folder = Path(folder)
    out: dict[str, list[dict]] = {}
    for name in SETS:
        f = folder / f"{name}.jsonl"
        rows = []
        if f.exists():
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    row.setdefault("question", row.get("text", ""))
                    row["set"] = name
                    rows.append(row)
        out[name] = rows
    if not any(out.values()):
        raise FileNotFoundError(f"{folder}: no facts.jsonl, followups.jsonl or unanswerable.jsonl")
    return out


def documents(folder: str | Path, datasets_dir: Path) -> list[Path]:
    """The set's documents from documents.txt (relative paths are under the datasets folder)."""
    listing = Path(folder) / "documents.txt"
    if not listing.exists():
        raise FileNotFoundError(f"{listing} is missing: it lists the set's documents, one a line")
    paths = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            p = Path(line.strip()).expanduser()
            p = p if p.is_absolute() else datasets_dir / p
            if not p.exists():
                raise FileNotFoundError(f"document {p} (from {listing}) is missing")
            paths.append(p)
    return paths


def _median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def score_item(row: dict, result: dict | None) -> dict:
    """Per-question flags for one answer (``result`` None: the run lacks it, everything counts as missed)."""
    result = result or {}
    answer = result.get("answer", "")
    flags = {"id": row["id"], "set": row["set"], "split": row.get("split", "dev"),
             "abstained": bool(result.get("abstained")), "loops": repeats_a_sentence(answer),
             "cut": cut_mid_word(answer), "first_text_s": result.get("first_text_s"),
             "ttft_s": result.get("ttft_s"), "missing": not result}
    if row["set"] != "unanswerable":
        passages = result.get("passages") or []
        gold_at = [i for i, p in enumerate(passages) if holds_quote(p.get("text", ""), row.get("gold_quote", ""))]
        flags.update(fact=fact_hit(answer, row.get("must_include_any", []), row.get("must_match_case", False)), gold_in_passages=bool(gold_at),
                     gold_cited=bool(set(gold_at) & set(result.get("cited") or [])))
    return flags


def summarise(items: list[dict]) -> dict:
    answerable = [i for i in items if i["set"] != "unanswerable"]
    unanswerable = [i for i in items if i["set"] == "unanswerable"]
    out = {"n": len(items)}
    if answerable:
        out.update(fact_hit=_share([i["fact"] for i in answerable]),
                   gold_in_passages=_share([i["gold_in_passages"] for i in answerable]),
                   gold_cited=_share([i["gold_cited"] for i in answerable]),
                   false_abstention=_share([i["abstained"] for i in answerable]))
    if unanswerable:
        out.update(abstained=sum(i["abstained"] for i in unanswerable), unanswerable=len(unanswerable))
    out.update(loops=sum(i["loops"] for i in items), cut_mid_word=sum(i["cut"] for i in items),
               missing=sum(i["missing"] for i in items),
               first_text_s_median=_median([i["first_text_s"] for i in items]),
               ttft_s_median=_median([i["ttft_s"] for i in items]))
    return out


def score(dataset: str | Path, run: dict, ids: set[str] | None = None) -> dict:
    """Figures per set (facts, followups, unanswerable) and split (dev, held-out, all); ``ids``: only
    these questions (a run made with a limit)."""
    rows = read_set(dataset)
    items = [score_item(r, run.get(str(r["id"]))) for name in SETS for r in rows[name]
             if ids is None or str(r["id"]) in ids]
    figures: dict = {}
    for name in SETS:
        of_set = [i for i in items if i["set"] == name]
        if not of_set:
            continue
        figures[name] = {"all": summarise(of_set)}
        for split in sorted({i["split"] for i in of_set}):
            figures[name][split] = summarise([i for i in of_set if i["split"] == split])
    figures["items"] = items
    return figures


def table(figures: dict) -> str:
    """The figures as a Markdown table (one row per set and split)."""
    cols = ["fact_hit", "gold_in_passages", "gold_cited", "false_abstention", "abstained", "loops",
            "cut_mid_word", "first_text_s_median", "ttft_s_median"]
    lines = ["| set | split | n | " + " | ".join(cols) + " |", "|---|---|---:|" + "---:|" * len(cols)]
    for name in SETS:
        for split, f in (figures.get(name) or {}).items():
            cells = []
            for c in cols:
                v = f.get(c)
                if c == "abstained" and v is not None:
                    v = f"{v} of {f['unanswerable']}"
                cells.append("–" if v is None else str(v))
            lines.append(f"| {name} | {split} | {f['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def document_row(items: list[dict]) -> dict:
    """One row of the per-document table: facts, follow-ups and unanswerable figures of ``items``."""
    of = {name: [i for i in items if i["set"] == name] for name in SETS}
    facts, follow = summarise(of["facts"]) if of["facts"] else {}, summarise(of["followups"]) if of["followups"] else {}
    answerable = of["facts"] + of["followups"]
    return {"n": len(items), "splits": "/".join(sorted({i["split"] for i in items})),
            "fact_hit": facts.get("fact_hit"), "gold_in_passages": facts.get("gold_in_passages"),
            "followup_fact_hit": follow.get("fact_hit"), "followup_gold": follow.get("gold_in_passages"),
            "declined": sum(i["abstained"] for i in of["unanswerable"]), "unanswerable": len(of["unanswerable"]),
            "false_abstention": _share([i["abstained"] for i in answerable]),
            "first_text_s_median": _median([i["first_text_s"] for i in items]),
            "ttft_s_median": _median([i["ttft_s"] for i in items])}


def documents_table(items_by_document: dict[str, list[dict]]) -> tuple[str, dict]:
    """A Markdown table with a row per document (its set folder's name) and an overall row, and the rows."""
    rows = {name: document_row(items) for name, items in items_by_document.items()}
    if len(rows) > 1:
        rows["overall"] = document_row([i for items in items_by_document.values() for i in items])
    cols = ["fact_hit", "gold_in_passages", "followup_fact_hit", "followup_gold", "declined", "false_abstention",
            "first_text_s_median", "ttft_s_median"]
    lines = ["| document | split | n | " + " | ".join(cols) + " |", "|---|---|---:|" + "---:|" * len(cols)]
    for name, row in rows.items():
        cells = [f"{row['declined']} of {row['unanswerable']}" if c == "declined"
                 else "–" if row[c] is None else str(row[c]) for c in cols]
        lines.append(f"| {name} | {row['splits']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def expand_sets(folders: list[str | Path]) -> list[Path]:
    """Answer-set folders: a folder that is not a set itself but holds sets (bench/data/unseen) gives them all."""
    out = []
    for folder in map(Path, folders):
        if any((folder / f"{name}.jsonl").exists() for name in SETS):
            out.append(folder)
        else:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and any((p / f"{n}.jsonl").exists() for n in SETS)) \
                if folder.is_dir() else []
            if not subs:
                raise FileNotFoundError(f"{folder}: no answer set (facts.jsonl, ...) in it or in its sub-folders")
            out.extend(subs)
    return out


# ------------------------------------------------------------------------------------ running
def read_queries(path: str | Path) -> list[dict]:
    """Query lines ``{"id", "question", "history"?}`` (``_id`` / ``text`` accepted too)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows.append({"id": str(r.get("id", r.get("_id"))), "question": r.get("question", r.get("text", "")),
                         "history": r.get("history") or []})
    return rows


async def answer_one(question: str, history: list, options, lib) -> dict:
    """One question through the chat's pipeline, recorded as a RUN.json entry."""
    import time

    from rag import pipeline as pl

    t0 = time.perf_counter()
    rec = {"answer": "", "abstained": False, "query": question, "passages": [], "cited": [], "unsupported": [],
           "first_text_s": None, "ttft_s": None, "total_s": None, "notices": [], "error": None}
    said = ""
    async for ev in pl.answer(question, history, options, lib=lib):
        now = time.perf_counter() - t0
        if isinstance(ev, pl.Retrieved):
            rec["query"] = ev.query
        elif isinstance(ev, pl.NothingFound):
            rec["notices"].append(ev.message)
            if not ev.answering:
                rec["abstained"], said = True, ev.message
                rec["first_text_s"] = rec["first_text_s"] or now
        elif isinstance(ev, pl.Notice):
            rec["notices"].append(ev.text)
        elif isinstance(ev, pl.Quoted):
            rec["first_text_s"] = ev.seconds
        elif isinstance(ev, pl.Token):
            if rec["ttft_s"] is None:
                rec["ttft_s"] = now
                rec["first_text_s"] = rec["first_text_s"] or now
        elif isinstance(ev, pl.Revised):
            rec["unsupported"] = ev.unsupported
            rec["looped"], rec["cut"] = ev.looped, ev.cut
        elif isinstance(ev, pl.Sources):
            rec["passages"] = [{"text": h.chunk.text, "file": h.chunk.name, "page": h.chunk.page,
                                "score": round(float(h.score), 4)} for h in ev.used]
            rec["cited"] = [ev.used.index(h) for h in ev.cited if h in ev.used]
        elif isinstance(ev, pl.Done):
            said = ev.text
            rec["model"] = ev.model
        elif isinstance(ev, pl.Failed):
            rec["error"] = ev.text
    rec["answer"] = said
    rec["total_s"] = time.perf_counter() - t0
    for key in ("first_text_s", "ttft_s", "total_s"):
        if rec[key] is not None:
            rec[key] = round(rec[key], 3)
    return rec


def run_answers(docs: list, queries: list[dict], options=None, index_dir: str | Path | None = None,
                log=print) -> dict:
    """Index ``docs`` (a fresh temporary index unless ``index_dir``) and answer every query; the
    library, the embedder and the engine are warmed first, so times are those of a warm chat."""
    import asyncio
    import tempfile

    from rag import pipeline as pl
    from rag.library import Library

    options = options or pl.Options()
    tmp = None
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-answers-")
        index_dir = tmp.name
    try:
        lib = Library(Path(index_dir))
        report = lib.ingest(docs)
        log(f"ingest: {report.summary()}")

        async def go() -> dict:
            from engines import registry

            lib.search("warm up", 1)
            opts = options.normalised()
            if opts.style != "quote":
                eng = pl.engine(opts.engine)
                await eng.count_tokens([{"role": "user", "content": "warm up"}], model=opts.model or None)
            out = {}
            try:
                for i, q in enumerate(queries, 1):
                    out[q["id"]] = await answer_one(q["question"], q["history"], options, lib)
                    log(f"[{i}/{len(queries)}] {q['id']}: {out[q['id']]['answer'][:100]!r}")
            finally:
                await registry.close_all()
            return out

        return asyncio.run(go())
    finally:
        if tmp is not None:
            tmp.cleanup()


def set_queries(dataset: str | Path, split: str = "all", limit: int | None = None) -> list[dict]:
    """The set's questions (facts, follow-ups, unanswerable) as query lines, ``split`` only if given,
    the first ``limit`` of each kind if given."""
    rows = read_set(dataset)
    return [{"id": str(r["id"]), "question": r["question"], "history": r.get("history") or []}
            for name in SETS for r in [r for r in rows[name] if split in ("all", r.get("split", "dev"))][:limit]]
