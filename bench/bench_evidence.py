"""Evidence selection on an answer set: does the quote hold the fact, does the evidence say
"not answerable" for the unanswerable questions (and only for them)?

    python -m rag bench evidence [-- --dataset bench/data/answers --split dev -k 4]
    python -m rag bench evidence -- --dataset bench/data/unseen --split all   # a row per document + overall
    python -m rag bench evidence -- --dataset bench/data/unseen/openssh-client --retrieval-only --split all

First the ranking alone (no sentence scoring; ``--retrieval-only`` stops there): for each answerable
question (follow-ups with the chat's follow-up method) the gold passage's rank in the top ``--depths``
(default 6 / 20 / 50) of the chat's mode and of dense alone, printed per kind and, with several sets, a
table per document. Then the evidence:

Indexes the set's documents once (kept in --index-dir), retrieves each question (follow-ups with the
chosen follow-up method), scores the sentences once, prints how often the gold quote is in the k
retrieved passages and in the compact context the model reads at each ``--budgets`` size (estimated
tokens; default the shipped one), then sweeps the lexical weight and prints, per
weight: quote fact hit (1 and 2 sentences), the best-score distribution of answerable vs unanswerable
questions, and the abstention threshold that keeps false abstention <= 10 % on the split.
Then "the chat's choices": the answerable questions the chat refuses and the unanswerable ones it declines before
the model (the retrieval's relevance gate, then the names and threshold of ``evidence.select``), and how often the
quote the chat shows holds the expected fact.
No model is generated with: this is the part of the answer that is instant.
With several sets (``--dataset`` repeated, or a folder of sets) each is indexed on its own and a table
gives, per document and overall, the gold passage in the retrieved passages and in the compact context,
for facts and follow-ups.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import answer_eval  # noqa: E402
from rag.answer import evidence as ev_mod  # noqa: E402
from rag.answer.followup import METHODS, standalone_query  # noqa: E402
from rag.config import REPO_ROOT, settings  # noqa: E402
from rag.library import Library  # noqa: E402
from rag.search import is_relevant  # noqa: E402

DEPTHS = (6, 20, 50)  # gold passage in the top 6 (what the chat reads) / 20 / 50 of the ranking


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", action="append", help="answer set folder (repeatable, or a folder of sets); "
                    "default bench/data/answers")
    ap.add_argument("--split", default="dev", help="dev, held-out or all")
    ap.add_argument("-k", type=int, default=None)
    ap.add_argument("--mode", default=None)
    ap.add_argument("--followup", default=None, choices=METHODS)
    ap.add_argument("--index-dir", default=None)
    ap.add_argument("--budgets", type=int, nargs="+", default=[settings().context_tokens],
                    help="compact-context sizes to report gold in (estimated tokens)")
    ap.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS),
                    help="ranking depths to report the gold passage in (retrieval only, no sentence scoring)")
    ap.add_argument("--retrieval-only", action="store_true",
                    help="only the ranking depths (the chat's mode and dense alone): no sentence scoring")
    args = ap.parse_args()
    sets = answer_eval.expand_sets(args.dataset or [REPO_ROOT / "bench" / "data" / "answers"])
    rows, args.several = {}, len(sets) > 1  # several sets: each its own index (under --index-dir if given)
    for dataset in sets:
        if len(sets) > 1:
            print(f"== {dataset.name}", flush=True)
        rows[dataset.name] = one_set(dataset, args)
    if len(sets) > 1:
        if not args.retrieval_only:
            print(document_table(rows, args.budgets[0]))
        print(depth_table(rows, args.depths))
    return 0


def gold_rank(hits, quote: str) -> int | None:
    """1-based rank of the first passage holding the gold quote (None: not in ``hits``)."""
    return next((n for n, h in enumerate(hits, 1) if answer_eval.holds_quote(h.chunk.text, quote)), None)


def depth_ranks(lib: Library, items: list[dict], mode: str, depth: int) -> list[dict]:
    """Per answerable question (follow-ups with the chat's follow-up method), the gold passage's rank in the
    top ``depth`` of ``mode`` and of dense alone: retrieval only, nothing else is computed."""
    out = []
    for r in items:
        if r["set"] == "unanswerable":
            continue
        q = standalone_query(r["question"], r.get("history")) if r["set"] == "followups" else r["question"]
        out.append({"id": r["id"], "set": r["set"], "rank": gold_rank(lib.search(q, depth, mode), r["gold_quote"]),
                    "dense_rank": gold_rank(lib.search(q, depth, "dense"), r["gold_quote"])})
    return out


def _within(items: list[dict], key: str, depth: int) -> str:
    return f"{np.mean([i[key] is not None and i[key] <= depth for i in items]):.3f}" if items else "–"


def depth_lines(ranks: list[dict], depths: list[int], mode: str) -> list[str]:
    """'facts (30): hybrid top 6 / 20 / 50 .800 / .933 / 1.000; dense ...' per kind."""
    lines = []
    for kind in ("facts", "followups"):
        of = [i for i in ranks if i["set"] == kind]
        if of:
            cut = " / ".join(map(str, depths))
            lines.append(f"{kind} ({len(of)}): gold in the {mode} top {cut}: "
                         + " / ".join(_within(of, "rank", d) for d in depths)
                         + "; dense alone: " + " / ".join(_within(of, "dense_rank", d) for d in depths))
    return lines


def depth_table(rows: dict[str, list[dict]], depths: list[int]) -> str:
    """Per document and overall: the gold passage within each depth of the ranking (default mode, dense)."""
    rows = dict(rows, overall=[i for items in rows.values() for i in items])
    head = [f"{kind}: top {d}{' (dense)' if key == 'dense_rank' else ''}" for kind in ("facts", "follow-ups")
            for key in ("rank", "dense_rank") for d in depths]
    lines = ["| document | n | " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(head)]
    for name, items in rows.items():
        cells = [_within([i for i in items if i["set"] == kind], key, d) for kind in ("facts", "followups")
                 for key in ("rank", "dense_rank") for d in depths]
        lines.append(f"| {name} | {len(items)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def document_table(rows: dict[str, list[dict]], budget: int) -> str:
    """Per document and overall: the gold passage in the k retrieved passages and in the compact context."""
    rows = dict(rows, overall=[i for items in rows.values() for i in items])
    lines = [f"| document | n | facts: gold retrieved | facts: gold in context ({budget}) | follow-ups: gold retrieved "
             f"| follow-ups: gold in context |", "|---|---:|---:|---:|---:|---:|"]
    for name, items in rows.items():
        cells = []
        for kind in ("facts", "followups"):
            of = [i for i in items if i["set"] == kind]
            cells += [f"{np.mean([i[key] for i in of]):.3f}" if of else "–" for key in ("retrieved", "in_context")]
        lines.append(f"| {name} | {len(items)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def one_set(dataset: Path, args: argparse.Namespace) -> list[dict]:
    """The evidence figures of one set, printed; returns per answerable question the gold passage's rank in
    the ranking (``depth_ranks``) and, unless ``--retrieval-only``, whether it was retrieved (top k) and
    whether it is in the compact context (the first budget)."""
    s = settings()
    k = args.k or s.top_k
    mode = args.mode or s.retrieval_mode
    rows = answer_eval.read_set(dataset)
    items = [r for name in answer_eval.SETS for r in rows[name] if args.split in ("all", r.get("split", "dev"))]
    tmp = None
    index_dir = args.index_dir and (str(Path(args.index_dir) / dataset.name) if args.several else args.index_dir)
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-evidence-")
        index_dir = tmp.name
    lib = Library(Path(index_dir))
    lib.ingest(answer_eval.documents(dataset, s.datasets_dir))
    lib.search("warm up", 1)
    ranks = depth_ranks(lib, items, mode, max(args.depths))
    for line in depth_lines(ranks, args.depths, mode):
        print(line, flush=True)
    if args.retrieval_only:
        if tmp is not None:
            tmp.cleanup()
        return ranks
    followup = {m: [] for m in METHODS}
    scored = []
    t0 = time.perf_counter()
    for r in items:
        methods = METHODS if r["set"] == "followups" else (args.followup or "question",)
        for m in methods:
            q = standalone_query(r["question"], r.get("history"), m) if r["set"] == "followups" else r["question"]
            hits = lib.search(q, k, mode)
            if r["set"] == "followups":
                followup[m].append(any(answer_eval.holds_quote(h.chunk.text, r["gold_quote"]) for h in hits))
            if m == (args.followup or "previous-question") or r["set"] != "followups":
                ev = ev_mod.select(lib.embedder, r["question"], hits, unknown_terms=lib.unknown_terms, conversation=q)
                scored.append((r, hits, ev))
    if followup["question"]:
        std = []
        for r in items:
            if r["set"] == "followups" and r.get("standalone"):
                hits = lib.search(r["standalone"], k, mode)
                std.append(any(answer_eval.holds_quote(h.chunk.text, r["gold_quote"]) for h in hits))
        print("follow-ups, gold in passages:", json.dumps({m: round(float(np.mean(v)), 3) for m, v in followup.items()}),
              f"standalone {np.mean(std):.3f}" if std else "(no standalone questions)")
    print(f"{len(scored)} questions scored in {time.perf_counter() - t0:.1f} s")
    for name in ("facts", "followups"):
        rated = [(r, hits, ev) for r, hits, ev in scored if r["set"] == name]
        if not rated:
            continue
        retrieved = np.mean([any(answer_eval.holds_quote(h.chunk.text, r["gold_quote"]) for h in hits)
                             for r, hits, _ in rated])
        in_context = {b: round(float(np.mean([any(answer_eval.holds_quote(h.chunk.text, r["gold_quote"])
                                                  for h in ev_mod.context(ev, b)) for r, _, ev in rated])), 3)
                      for b in args.budgets}
        print(f"{name} ({len(rated)}, k={k}, {mode}): gold in the retrieved passages {retrieved:.3f}; "
              f"in the compact context by budget {json.dumps(in_context)}")
    print(the_chats_choices(scored, mode))
    for w in (0.0, 0.15, 0.3, 0.45, 0.6):
        best_a, best_u, q1, q2 = [], [], [], []
        for r, hits, ev in scored:
            ranked = sorted((s for ss in ev.sentences for s in ss),
                            key=lambda s: -((1 - w) * s.dense + w * s.lexical))
            best = (1 - w) * ranked[0].dense + w * ranked[0].lexical if ranked else 0.0
            if r["set"] == "unanswerable":
                best_u.append(best)
                continue
            best_a.append(best)
            must, case = r["must_include_any"], r.get("must_match_case", False)
            q1.append(bool(ranked) and answer_eval.fact_hit(ranked[0].text, must, case))
            q2.append(bool(ranked) and answer_eval.fact_hit(" ".join(s.text for s in ranked[:2]), must, case))
        a = np.sort(best_a)
        thr = float(a[int(0.1 * len(a))]) if len(a) else 0.0  # keeps false abstention <= 10 %
        caught = sum(b < thr for b in best_u)
        print(f"lexical weight {w:.2f}: quote fact hit 1 sentence {np.mean(q1):.3f}, 2 sentences {np.mean(q2):.3f}; "
              f"best score answerable median {np.median(best_a):.3f} (10th pct {thr:.3f}), unanswerable "
              f"{[round(b, 3) for b in sorted(best_u)]}; threshold {thr:.3f} abstains on {caught} of {len(best_u)}")
    if tmp is not None:
        tmp.cleanup()
    by_id = {i["id"]: i for i in ranks}
    return [{**by_id[r["id"]], "retrieved": gold_rank(hits, r["gold_quote"]) is not None,
             "in_context": gold_rank(ev_mod.context(ev, args.budgets[0]), r["gold_quote"]) is not None}
            for r, hits, ev in scored if r["set"] != "unanswerable"]


def the_chats_choices(scored: list, mode: str) -> str:
    """What the chat decides before the model: answerable questions it refuses and unanswerable ones it declines
    (retrieval's relevance gate, then ``evidence.select``'s names and threshold), and whether its quote holds the
    expected fact (answerable questions it answers)."""
    refused = [not (is_relevant(hits, mode) and ev.answerable) for r, hits, ev in scored]
    kinds = [r["set"] for r, _, _ in scored]
    parts = [f"answerable refused {sum(x for x, k in zip(refused, kinds) if k != 'unanswerable')} of "
             f"{sum(k != 'unanswerable' for k in kinds)}, unanswerable declined "
             f"{sum(x for x, k in zip(refused, kinds) if k == 'unanswerable')} of {kinds.count('unanswerable')}"]
    for name in ("facts", "followups"):
        quoted = [(r, " ".join(q.text for q in ev.quotes)) for (r, _, ev), x in zip(scored, refused)
                  if r["set"] == name and not x]
        if quoted:
            hit = sum(answer_eval.fact_hit(t, r["must_include_any"], r.get("must_match_case", False)) for r, t in quoted)
            parts.append(f"{name}: the quote holds the fact {hit} of {len(quoted)} "
                         f"({np.mean([len(t.split()) for _, t in quoted]):.0f} words)")
    return "the chat's choices: " + "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
