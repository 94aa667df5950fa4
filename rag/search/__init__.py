"""Search: a question in, ranked chunk ids out, and whether they are worth answering from.

- ``dense``: FAISS over the chunks' embedded views.
- ``lexical``: BM25 with the project's tokenizer and stemmer.
- ``fusion``: dense + lexical scores fused into one ranking (``rank``, ``fuse``).
- ``index``: ``SearchIndex``, the two structures in memory and the store generation they reflect.
- ``reranker``: the optional cross-encoder stage (``Reranker``, ``rerank``).
- ``relevance``: ``is_relevant``, the "found something about it?" decision.

Imports only ``rag.schema`` and ``rag.config``: the library (the facade) wires it to the store and
the embedder.
"""
from rag.search.dense import DenseIndex
from rag.search.fusion import fuse, rank
from rag.search.index import Added, SearchIndex
from rag.search.lexical import LexicalIndex
from rag.search.relevance import MIN_DENSE_SCORE, is_relevant
from rag.search.reranker import Reranker, RerankerError, rerank

__all__ = ["Added", "DenseIndex", "LexicalIndex", "MIN_DENSE_SCORE", "Reranker", "RerankerError", "SearchIndex",
           "fuse", "is_relevant", "rank", "rerank"]
