"""Where the pyfaq + python-docs distractor score comes from (issue 3's ">= .78" target).

    python -m rag bench distractors [-- --index-dir DIR] [--cache FILE.npz]

1. The dataset README's layout, rebuilt: each pyfaq text embedded whole, python-docs cut into
   200-word chunks of the raw files (6,007), each embedded as MiniLM reads it (first 256 word
   pieces). Scored with the README's convention (each chunk its own unjudged document) and with
   `rag eval`'s (all chunks of a file one document), then the same texts through this project's
   BM25 and fusion (`rag.search.rank`, default settings).
2. With --index-dir DIR (the folder `python -m rag eval --dataset .../pyfaq --extra-docs
   .../python-docs --index-dir DIR` left): the two halves swapped — this project's pyfaq passages
   against the README's distractor chunks, and the README's pyfaq vectors against this project's
   python-docs passages (dense). Which half moves the score?
3. DIAGNOSTIC, not shipped: a small-document prior (score minus beta * ln(passages in the file))
   on DIR's index, to show how much of this benchmark a length bias alone can buy.

Embedding the README layout takes ~4.5 min here (--cache keeps the vectors for re-runs).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import numpy as np  # noqa: E402

from rag.config import settings  # noqa: E402

DATA = settings().datasets_dir


def readme_layout(docs: Path, words: int = 200) -> tuple[list[str], list[str]]:
    chunks, files = [], []
    for p in sorted(docs.rglob("*.txt")):
        w = p.read_text(encoding="utf-8", errors="replace").split()
        for i in range(0, len(w), words):
            chunks.append(" ".join(w[i:i + words]))
            files.append(str(p))
    return chunks, files


def tails(emb, chunks: list[str]) -> tuple[list[str], list[int]]:
    """The text MiniLM never reads in each chunk, as windows that fit it: (texts, owning chunk)."""
    words = [c.split() for c in chunks]
    vocab = sorted({w for ws in words for w in ws})
    cost = dict(zip(vocab, emb.count_tokens(vocab)))
    out, owner = [], []
    for j, ws in enumerate(words):
        used, cur, n, first = 0, [], 0, True
        for w in ws:
            c = cost[w]
            if first:
                used += c
                if used <= emb.window:
                    continue
                first = False
            if n + c > emb.window and cur:
                out.append(" ".join(cur)); owner.append(j); cur, n = [], 0
            cur.append(w); n += c
        if cur:
            out.append(" ".join(cur)); owner.append(j)
    return out, owner


def ndcg(order_docs: dict[str, list[str]], qrels) -> dict:
    from rag.evaluation import metrics

    m = metrics(order_docs, qrels)
    return {k: m[k] for k in ("recall@1", "recall@10", "mrr@10", "ndcg@10")}


def ranked_docs(hits_per_query: dict[str, list[int]], doc_of: dict[int, str], k: int = 10) -> dict[str, list[str]]:
    from rag.evaluation import first_docs

    return {q: first_docs((doc_of[i] for i in ids), k) for q, ids in hits_per_query.items()}


def run_modes(label, vecs, owners, texts, ids, doc_of, queries, qvecs, qrels, modes=("dense", "lexical", "hybrid")):
    """Rank with the project's own DenseIndex / LexicalIndex / rank() over the given parts."""
    from rag.search import DenseIndex, LexicalIndex, rank

    dense = DenseIndex(vecs.shape[1])
    dense.add(owners, vecs)
    lex = LexicalIndex()
    if "lexical" in modes or "hybrid" in modes:
        lex.add(ids, texts)
    for mode in modes:
        hits = {q: [i for i, _, _ in rank(qvecs[q], queries[q], dense, lex, k=200, mode=mode)] for q in qrels}
        print(f"{label:<58} {mode:<8} {json.dumps(ndcg(ranked_docs(hits, doc_of), qrels))}", flush=True)


def load_index(index_dir: Path, mapping: dict[str, str]):
    """Passages of an eval index: (ids, view vectors, owners, lexical texts, doc id per chunk, file per chunk)."""
    from rag.library import Library

    lib = Library(index_dir / "index")
    _, ids, vecs, owners, texts = lib.store.load_all(lib.embedder.dim)
    chunks = lib.store.chunks([int(i) for i in ids])
    src = {int(i): chunks[int(i)].source for i in ids}
    doc_of = {i: mapping.get(s, "extra:" + s) for i, s in src.items()}
    return ids, vecs, owners, texts, doc_of, src


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(DATA / "pyfaq"))
    ap.add_argument("--docs", default=str(DATA / "python-docs"))
    ap.add_argument("--index-dir", help="the --index-dir of a full-distractor `rag eval` run (parts 2 and 3)")
    ap.add_argument("--cache", help=".npz file for the README layout's vectors")
    a = ap.parse_args()
    from rag.embedder import Embedder
    from rag.evaluation import load_beir, write_corpus

    corpus, queries, qrels = load_beir(a.dataset)
    emb = Embedder.get()
    qvecs = {q: emb.encode_query(queries[q]) for q in qrels}
    cids = list(corpus)
    chunks, files = readme_layout(Path(a.docs))
    gold_texts = [str(corpus[c].get("text") or "") for c in cids]
    tail_texts, tail_owner = tails(emb, chunks)
    if a.cache and Path(a.cache).exists():
        z = np.load(a.cache)
        gv, dv, tv = z["gold"], z["docs"], z["tails"]
    else:
        enc = lambda t: emb.model.encode(t, batch_size=32, normalize_embeddings=True).astype(np.float32)  # noqa: E731
        gv, dv, tv = enc(gold_texts), enc(chunks), enc(tail_texts)
        if a.cache:
            np.savez(a.cache, gold=gv, docs=dv, tails=tv)
    print(f"README layout: {len(cids)} pyfaq texts + {len(chunks)} python-docs chunks of 200 words "
          f"(MiniLM reads the first {emb.max_tokens} word pieces of each)")
    n_g = len(cids)
    ids = np.arange(n_g + len(chunks), dtype=np.int64)
    vecs = np.vstack([gv, dv])
    texts = gold_texts + chunks
    per_chunk = {int(i): (cids[i] if i < n_g else f"chunk:{i}") for i in ids}
    per_file = {int(i): (cids[i] if i < n_g else "extra:" + files[i - n_g]) for i in ids}
    run_modes("1. pyfaq texts alone (README: .869)", gv, ids[:n_g], gold_texts, ids[:n_g], per_chunk,
              queries, qvecs, qrels, modes=("dense",))
    run_modes("1. README layout, README scoring (chunk = document)", vecs, ids, texts, ids, per_chunk,
              queries, qvecs, qrels, modes=("dense",))
    run_modes("1. README layout, rag-eval scoring (file = document)", vecs, ids, texts, ids, per_file,
              queries, qvecs, qrels)
    # the same chunks with every word embedded: a chunk scores as its best window (first 256 + the rest)
    order = np.argsort(np.r_[np.arange(len(chunks)), np.asarray(tail_owner)], kind="stable")
    all_owner = np.r_[np.arange(len(chunks)), np.asarray(tail_owner)][order] + n_g
    run_modes(f"1. README chunks, all text embedded (+{len(tail_texts)} windows)", np.vstack([gv, dv, tv][:1] +
              [np.vstack([dv, tv])[order]]), np.r_[np.arange(n_g), all_owner], texts, ids, per_file,
              queries, qvecs, qrels)
    if not a.index_dir:
        return 0

    work = Path(a.index_dir)
    mapping = write_corpus(corpus, work / "corpus")
    oids, ovecs, oowners, otexts, odoc, osrc = load_index(work, mapping)
    is_gold = np.array([not odoc[int(i)].startswith("extra:") for i in oids])
    gold_ids, dis_ids = set(oids[is_gold].tolist()), set(oids[~is_gold].tolist())
    vmask_gold = np.array([int(o) in gold_ids for o in oowners])
    off = int(oids.max()) + 1
    # this project's pyfaq passages + README distractor chunks
    v = np.vstack([ovecs[vmask_gold], dv])
    ow = np.r_[oowners[vmask_gold], off + np.arange(len(chunks))]
    doc_of = {**{i: odoc[i] for i in gold_ids}, **{off + j: "extra:" + f for j, f in enumerate(files)}}
    run_modes("2. our pyfaq passages + README distractor chunks", v, ow, None, None, doc_of,
              queries, qvecs, qrels, modes=("dense",))
    # README pyfaq vectors + this project's python-docs passages
    v = np.vstack([gv, ovecs[~vmask_gold]])
    ow = np.r_[off + np.arange(n_g), oowners[~vmask_gold]]
    doc_of = {**{off + j: c for j, c in enumerate(cids)}, **{i: odoc[i] for i in dis_ids}}
    run_modes("2. README pyfaq vectors + our python-docs passages", v, ow, None, None, doc_of,
              queries, qvecs, qrels, modes=("dense",))
    run_modes("2. ours on both sides (= rag eval)", ovecs, oowners, otexts, oids, odoc, queries, qvecs, qrels)

    # 3. DIAGNOSTIC: a length prior on the passages' best-view scores (dense), not part of the product
    pos = {int(c): k for k, c in enumerate(oids)}
    vi = np.array([pos[int(o)] for o in oowners])
    starts = np.r_[0, np.flatnonzero(vi[1:] != vi[:-1]) + 1]
    Q = np.stack([qvecs[q] for q in qrels])
    best = np.maximum.reduceat(Q @ ovecs.T, starts, axis=1)
    size = collections.Counter(osrc.values())
    log_n = np.log([size[osrc[int(c)]] for c in oids])
    for beta in (0.0, 0.02, 0.05):
        s = best - beta * log_n[None, :]
        hits = {q: [int(oids[j]) for j in np.argsort(-s[k], kind="stable")[:200]] for k, q in enumerate(qrels)}
        print(f"{'3. DIAGNOSTIC small-document prior, beta=' + str(beta):<58} dense    "
              f"{json.dumps(ndcg(ranked_docs(hits, odoc), qrels))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
