"""The BM25 side of hybrid search: an in-memory inverted index over chunk texts.

Chunks are tokenised once when added (word characters, lower case, English stop words dropped,
a light suffix stemmer; an identifier written in camelCase or with underscores also gives its
parts, so ``Py_BuildValue`` matches "build value"; a command-line option also gives itself, "-A");
the BM25 weight matrix (terms x chunks, sparse) is rebuilt lazily when the set of chunks changed, so
adding or removing files costs nothing until the next query.

Scored here rather than by ``bm25s``: fed this tokenizer (``method="atire", idf_method="lucene"``,
the same formula) bm25s gave the same scores and the same figures (pyfaq, R FAQ), but it has no
incremental update and builds its index in Python loops: the rebuild after a change took 5.4 s
instead of 0.3 s at 100k chunks (0.49 s instead of 0.03 s at 10k), paid by the next question.

The PostgreSQL backend (``rag.backends.pg_lexicon``) scores with the same pieces: ``term_counts`` (a
passage's terms and their frequencies), ``K1``, ``B``, ``idf`` and ``avgdl``, so both backends give a
passage the same score for a question and agree on ``unknown_terms``.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np
from scipy import sparse

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves s t don
""".split())

_WORD = re.compile(r"[A-Za-z0-9_]+")
_OPTION = re.compile(r"-(-?[A-Za-z][A-Za-z0-9_]*)")  # "-A", "--force" (where no word character or dash precedes)
_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")

# derivational endings (longest first where they overlap); one is removed after the inflectional
# step, only when at least four letters remain ("assignment" -> "assign", "immutable" -> "immut").
# No final-e removal: measured, it cost R-FAQ lexical hit@1 .845 -> .831.
_DERIVATIONAL = (("ational", "ate"), ("tional", "tion"), ("ization", "ize"), ("ation", "ate"), ("ness", ""),
                 ("ment", ""), ("able", ""), ("ible", ""), ("ful", ""), ("ive", ""), ("ize", ""), ("ise", ""),
                 ("er", ""), ("ate", ""), ("al", ""), ("ity", ""))


# British spellings read as American ones, on both sides (technical manuals mostly write
# "optimization", users often "optimisation"): -ise/-isation/-yse -> -ize/-ization/-yze, after
# three or more letters ("otherwise" -> "otherwize" is harmless: both sides are folded alike).
_BRITISH = re.compile(r"^([a-z]{3,})(is|ys)(e|es|ed|ing|ation|ations|er|ers)$")


def stem(word: str) -> str:
    """A deliberately light English suffix stripper: British -ise spellings folded to -ize, plurals,
    -ing, -ed, -ly, then one derivational ending (-ation, -ment, -able, -er, ...). Measured against
    the inflectional step alone (BM25 nDCG@10): pyfaq .745 -> .749, pyfaq + 20 % python-docs .512 ->
    .535, R-FAQ hit@1 unchanged."""
    if len(word) <= 3 or not word.isalpha():
        return word
    word = _BRITISH.sub(lambda m: m[1] + m[2][0] + "z" + m[3], word)
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    elif word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    if len(word) > 5:
        for suffix, repl in _DERIVATIONAL:
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                return word[:-len(suffix)] + repl
    return word


@lru_cache(maxsize=262144)
def _terms(word: str) -> tuple[str, ...]:
    """Index terms of one word as written: the stemmed word, plus its parts when it is an
    identifier made of several (``getElementById``, ``Py_BuildValue``, ``HTTPServer``)."""
    low = word.lower()
    out = [] if low in STOPWORDS else [stem(low)]
    parts = _PART.findall(word)
    if len(parts) > 1:
        out += [stem(p) for p in (x.lower() for x in parts) if p not in STOPWORDS]
    return tuple(out)


def tokenize(text: str) -> list[str]:
    """The index terms of ``text``; a command-line option also gives itself as a term, a one-letter one with its
    case ("-A" is not "-a"): in a manual the option is what a question about it and its passage share."""
    out = [t for w in _WORD.findall(text) for t in _terms(w)]
    for m in _OPTION.finditer(text):  # a pattern that opens with its dash: a scan, not a try at every position
        before = text[m.start() - 1] if m.start() else " "
        if not (before.isalnum() or before in "_-"):  # not "x-y", nor a dash inside "a--b"
            option = m.group(1)
            out.append("-" + option if len(option) == 1 else "-" + option.lower())
    return out


K1, B = 1.2, 0.75  # BM25's term-frequency saturation and length normalisation


def term_counts(text: str) -> dict[str, int]:
    """A passage's terms and how often each occurs (in first-seen order); their sum is its length."""
    counts: dict[str, int] = {}
    for t in tokenize(text):
        counts[t] = counts.get(t, 0) + 1
    return counts


def idf(n, df):
    """BM25's inverse document frequency (Lucene's, always > 0) of terms held by ``df`` of ``n`` passages
    (``df`` a float32 array: the arithmetic is float32, as the index computes it)."""
    return np.log(1.0 + (n - df + 0.5) / (df + 0.5))


def avgdl(lengths_mean: float) -> float:
    """The mean passage length (in terms, every passage counted) used by length normalisation; 1 when 0."""
    return float(lengths_mean) or 1.0


class LexicalIndex:
    def __init__(self, k1: float = K1, b: float = B):
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        self.docs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # chunk id -> (term ids, term freqs)
        self._lock = threading.Lock()
        self._matrix = None  # csr: terms x columns
        self._col_ids = np.zeros(0, dtype=np.int64)  # column -> chunk id
        self._idf = np.zeros(0, dtype=np.float32)
        self._df = np.zeros(0, dtype=np.float32)  # chunks holding each term

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, ids, texts) -> None:
        prepared = []
        for cid, text in zip(ids, texts):
            prepared.append((int(cid), term_counts(text)))
        with self._lock:
            for cid, counts in prepared:
                tids = np.fromiter((self.vocab.setdefault(t, len(self.vocab)) for t in counts), dtype=np.int32,
                                   count=len(counts))
                self.docs[cid] = (tids, np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            self._matrix = None

    def remove(self, ids) -> None:
        with self._lock:
            for cid in ids:
                self.docs.pop(int(cid), None)
            self._matrix = None

    def _build(self) -> None:
        ids = np.array(sorted(self.docs), dtype=np.int64)  # sorted: scores_for() uses searchsorted
        n = len(ids)
        docs = [self.docs[int(i)] for i in ids]
        nterms = max(len(self.vocab), 1)
        if n == 0:
            self._matrix = sparse.csr_matrix((nterms, 0), dtype=np.float32)
            self._col_ids = ids
            self._idf = np.zeros(nterms, dtype=np.float32)
            self._df = np.zeros(nterms, dtype=np.float32)
            return
        lens = np.fromiter((len(t) for t, _ in docs), dtype=np.int64, count=n)
        rows = np.concatenate([t for t, _ in docs])
        tfs = np.concatenate([f for _, f in docs])
        cols = np.repeat(np.arange(n, dtype=np.int64), lens)
        dl = np.bincount(cols, weights=tfs, minlength=n).astype(np.float32)
        mean_dl = avgdl(dl.mean())
        df = np.bincount(rows, minlength=nterms).astype(np.float32)
        self._df = df
        term_idf = idf(n, df).astype(np.float32)
        norm = self.k1 * (1 - self.b + self.b * dl[cols] / mean_dl)
        weights = term_idf[rows] * tfs * (self.k1 + 1) / (tfs + norm)
        self._matrix = sparse.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=(nterms, n))
        self._col_ids = ids
        self._idf = term_idf

    def scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, BM25 score of each) over every chunk; zeros where no query term occurs."""
        with self._lock:
            if self._matrix is None:
                self._build()
            matrix, col_ids = self._matrix, self._col_ids
            tids = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not tids or matrix.shape[1] == 0:
            return col_ids, np.zeros(len(col_ids), dtype=np.float32)
        s = np.asarray(matrix[tids].sum(axis=0)).ravel().astype(np.float32)
        return col_ids, s

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of ``text`` (as BM25 reads them) that no indexed chunk holds."""
        with self._lock:
            if self._matrix is None:
                self._build()
            vocab, df = self.vocab, self._df
            return [t for t in dict.fromkeys(tokenize(text)) if t not in vocab or df[vocab[t]] == 0]

    def top(self, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, s = self.scores(query)
        if len(ids) == 0:
            return ids, s
        n = min(n, len(ids))
        idx = np.argpartition(-s, n - 1)[:n]
        idx = idx[np.argsort(-s[idx], kind="stable")]
        keep = s[idx] > 0
        return ids[idx][keep], s[idx][keep]

    @staticmethod
    def pick(ids: np.ndarray, scores: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Scores of the ``wanted`` chunk ids out of a full ``scores()`` answer (0 if absent)."""
        if len(ids) == 0:
            return np.zeros(len(wanted), dtype=np.float32)
        pos = np.searchsorted(ids, wanted)
        pos = np.clip(pos, 0, len(ids) - 1)
        found = ids[pos] == wanted
        return np.where(found, scores[pos], 0.0).astype(np.float32)
