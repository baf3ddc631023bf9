"""Okapi BM25 over the general pool, with the seed set as the query.

Scoring formula (rank-bm25 0.2.2 ``BM25Okapi``, the reference the user asked for)::

    score(d, q) = sum over query tokens t (with repeats) of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = log(N - df(t) + 0.5) - log(df(t) + 0.5), and a negative idf (a term in
                  more than half of the documents) is replaced by epsilon * mean idf.

Backends (a registry, ``@register_bm25_backend``):

- ``sparse`` (default): the formula above precomputed as one CSR matrix W[doc, term], so a
  query is a sparse mat-vec. Same scores as rank-bm25 (tests check 1e-6), about three orders
  of magnitude faster per seed query (bench/bench_retrieval.py).
- ``rank_bm25``: rank-bm25 itself (a Python loop over all documents per query token: whole
  seconds per seed-set query on the 30k-document pool). The reference.
- ``bm25s``: the bm25s package (optional dependency, method "robertson"): float32 and its
  own idf (no epsilon floor), so scores differ from rank-bm25; for benchmarks.
- ``streaming`` (``bm25_stream.py``): the same scores computed in passes over batches of
  documents, memory O(number of documents); the paper profile's OpenWebText-sized pool.

Seed set -> query (``query_scores``): ``concatenated`` scores the concatenation of all seed
tokens (the paper: "we use the seed dataset as a query"); ``per_seed_sum`` sums each seed
document's scores, which is *identical* to ``concatenated`` because BM25 is additive over
query tokens (kept so the identity is stated and tested); ``per_seed_max`` takes, per pool
document, its best score against any single seed document.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from ssae_utils.registry import Registry
from ssae_utils.retrieval.tokenize import tokenize_all

__all__ = ["BM25Index", "SparseBM25", "RankBM25", "BM25S", "register_bm25_backend",
           "available_bm25_backends", "build_bm25", "bm25_from_config", "query_scores", "query_scores_many",
           "QUERY_MODES"]


class BM25Index(Protocol):
    name: str
    n_docs: int

    def score(self, query: Sequence[str]) -> np.ndarray:
        """float64 [n_docs]: the BM25 score of every document for one tokenized query."""

    def score_many(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """float64 [n_queries, n_docs]."""


_BACKENDS: Registry[BM25Index] = Registry("BM25 backend")


def register_bm25_backend(name: str):
    return _BACKENDS.register(name)


def available_bm25_backends() -> list[str]:
    return _BACKENDS.names()


def build_bm25(corpus_tokens: Sequence[Sequence[str]], backend: str = "sparse", *,
               k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> BM25Index:
    """Index a tokenized corpus (``tokenize.tokenize_all(texts)``) with a registered backend."""
    backend_cls = _BACKENDS.get(backend)
    if len(corpus_tokens) == 0:
        raise ValueError("cannot build a BM25 index over an empty corpus")
    if sum(len(d) for d in corpus_tokens) == 0:
        raise ValueError("every document of the corpus is empty after tokenization")
    return backend_cls(corpus_tokens, k1=k1, b=b, epsilon=epsilon)


class _LoopMany:
    def score_many(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        if len(queries) == 0:
            return np.zeros((0, self.n_docs))
        return np.stack([self.score(q) for q in queries])


@register_bm25_backend("sparse")
class SparseBM25:
    """rank-bm25's BM25Okapi as a precomputed CSR matrix of per-(document, term) weights."""

    def __init__(self, corpus_tokens: Sequence[Sequence[str]], k1: float = 1.5,
                 b: float = 0.75, epsilon: float = 0.25):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        vocab: dict[str, int] = {}
        ids: list[int] = []
        lengths = np.fromiter((len(d) for d in corpus_tokens), dtype=np.int64,
                              count=len(corpus_tokens))
        for doc in corpus_tokens:
            ids.extend(vocab.setdefault(t, len(vocab)) for t in doc)
        self.vocab = vocab
        self.n_docs = len(corpus_tokens)
        rows = np.repeat(np.arange(self.n_docs), lengths)
        tf = sp.csr_matrix((np.ones(len(ids), dtype=np.float64),
                            (rows, np.asarray(ids, dtype=np.int64))),
                           shape=(self.n_docs, len(vocab)))
        tf.sum_duplicates()
        df = np.bincount(tf.indices, minlength=len(vocab)).astype(np.float64)
        idf = np.log(self.n_docs - df + 0.5) - np.log(df + 0.5)
        self.average_idf = float(idf.sum() / len(idf))
        idf[idf < 0] = epsilon * self.average_idf
        self.idf = idf
        self.doc_len = lengths.astype(np.float64)
        self.avgdl = float(lengths.sum() / self.n_docs)
        norm = k1 * (1 - b + b * self.doc_len / self.avgdl)           # per document
        row_of = np.repeat(np.arange(self.n_docs), np.diff(tf.indptr))
        data = tf.data
        tf.data = idf[tf.indices] * data * (k1 + 1) / (data + norm[row_of])
        self.weights = tf                                              # [n_docs, vocab]

    def _query_matrix(self, queries: Sequence[Sequence[str]]) -> sp.csr_matrix:
        rows, cols = [], []
        for i, q in enumerate(queries):
            for t in q:
                j = self.vocab.get(t)
                if j is not None:               # unseen terms score 0, as in rank-bm25
                    rows.append(i)
                    cols.append(j)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                             shape=(len(queries), len(self.vocab)))  # duplicates summed

    def score(self, query: Sequence[str]) -> np.ndarray:
        counts = np.asarray(self._query_matrix([query]).todense()).ravel()
        return np.asarray(self.weights @ counts, dtype=np.float64)

    def score_many(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        if len(queries) == 0:
            return np.zeros((0, self.n_docs))
        q = self._query_matrix(queries)                       # [n_q, vocab]
        return np.asarray((self.weights @ q.T.tocsc()).toarray().T, dtype=np.float64)


@register_bm25_backend("rank_bm25")
class RankBM25(_LoopMany):
    """The reference: ``rank_bm25.BM25Okapi`` (pinned rank-bm25==0.2.2)."""

    def __init__(self, corpus_tokens, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        from rank_bm25 import BM25Okapi

        self.model = BM25Okapi([list(d) for d in corpus_tokens], k1=k1, b=b, epsilon=epsilon)
        self.n_docs = self.model.corpus_size

    def score(self, query: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.get_scores(list(query)), dtype=np.float64)


@register_bm25_backend("bm25s")
class BM25S(_LoopMany):
    """bm25s (optional, ``pip install bm25s==0.3.16``), Robertson idf, float32 scores."""

    def __init__(self, corpus_tokens, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        try:
            import bm25s
        except ImportError as err:
            raise ImportError("the 'bm25s' BM25 backend needs `pip install bm25s==0.3.16`; "
                              "the default backend 'sparse' needs nothing extra") from err
        self.model = bm25s.BM25(k1=k1, b=b, method="robertson")
        self.model.index([list(d) for d in corpus_tokens], show_progress=False)
        self.n_docs = len(corpus_tokens)

    def score(self, query: Sequence[str]) -> np.ndarray:
        known = [t for t in query if t in self.model.vocab_dict]
        if not known:
            return np.zeros(self.n_docs)
        return np.asarray(self.model.get_scores(known), dtype=np.float64)


# --- seed set -> query ---------------------------------------------------------------------

QUERY_MODES: dict[str, Callable[[BM25Index, list[list[str]]], np.ndarray]] = {}


def _query_mode(name: str):
    def wrap(fn):
        QUERY_MODES[name] = fn
        return fn
    return wrap


@_query_mode("concatenated")
def _concatenated(index: BM25Index, seeds: list[list[str]]) -> np.ndarray:
    return index.score([t for s in seeds for t in s])


# A backend with ``score_reduced(queries, "sum" | "max")`` (the streaming one) reduces over
# the seeds while it scores, instead of materializing [n_seeds, n_docs].
@_query_mode("per_seed_sum")
def _per_seed_sum(index: BM25Index, seeds: list[list[str]]) -> np.ndarray:
    if hasattr(index, "score_reduced"):
        return index.score_reduced(seeds, "sum")
    return index.score_many(seeds).sum(axis=0)


@_query_mode("per_seed_max")
def _per_seed_max(index: BM25Index, seeds: list[list[str]]) -> np.ndarray:
    if hasattr(index, "score_reduced"):
        return index.score_reduced(seeds, "max")
    return index.score_many(seeds).max(axis=0)


# mode -> (queries from the tokenized seeds, reduction), for backends that score many
# requests in one pass over the corpus (``score_specs``)
_MODE_SPECS: dict[str, Callable[[list[list[str]]], tuple[list[list[str]], str]]] = {
    "concatenated": lambda seeds: ([[t for s in seeds for t in s]], "sum"),
    "per_seed_sum": lambda seeds: (seeds, "sum"),
    "per_seed_max": lambda seeds: (seeds, "max"),
}


def _seed_tokens(seed_texts: Sequence[str], mode: str) -> list[list[str]]:
    if mode not in QUERY_MODES:
        raise ValueError(f"unknown BM25 query mode {mode!r}; modes: {sorted(QUERY_MODES)}")
    if len(seed_texts) == 0:
        raise ValueError("the seed set is empty: BM25 needs at least one seed document as the query")
    seeds = tokenize_all(seed_texts)
    if not any(seeds):
        raise ValueError("every seed document is empty after BM25 tokenization "
                         "(only stopwords/punctuation): the query has no terms")
    return seeds


def query_scores(index: BM25Index, seed_texts: Sequence[str], mode: str = "concatenated") -> np.ndarray:
    """BM25 score of every pool document for the seed set (float64 [n_docs])."""
    seeds = _seed_tokens(seed_texts, mode)
    return QUERY_MODES[mode](index, seeds)


def query_scores_many(index: BM25Index, seed_sets: dict[str, Sequence[str]],
                      modes: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {mode: query_scores(index, seed_sets[name], mode)}}``. A backend with
    ``score_specs`` (streaming) computes them all in one pass over the corpus; the others
    call ``query_scores`` once per pair (the same scores either way)."""
    tokens = {name: {mode: _seed_tokens(texts, mode) for mode in modes} for name, texts in seed_sets.items()}
    if not hasattr(index, "score_specs"):
        return {name: {mode: QUERY_MODES[mode](index, seeds) for mode, seeds in per.items()}
                for name, per in tokens.items()}
    keys = [(name, mode) for name, per in tokens.items() for mode in per]
    outs = index.score_specs([_MODE_SPECS[mode](tokens[name][mode]) for name, mode in keys])
    result: dict[str, dict[str, np.ndarray]] = {name: {} for name in tokens}
    for (name, mode), scores in zip(keys, outs):
        result[name][mode] = scores
    return result


from ssae_utils.retrieval import bm25_stream as _bm25_stream  # noqa: E402,F401  (registers "streaming")



def bm25_from_config(cfg, texts: Sequence[str], spill_dir=None) -> BM25Index:
    """The pool's BM25 index as a ``RetrievalConfig`` asks for it (``bm25_backend``, k1, b,
    epsilon). "streaming" tokenizes ``bm25_stream_batch_docs`` texts at a time and spills
    its vocabulary table under ``spill_dir`` (default ``<cache>/bm25_stream``); the other
    backends tokenize the whole pool into memory (``tokenize_all``)."""
    params = dict(k1=cfg.bm25_k1, b=cfg.bm25_b, epsilon=cfg.bm25_epsilon)
    if cfg.bm25_backend == "streaming":
        from ssae_utils.paths import cache_dir

        return _bm25_stream.StreamingBM25.from_texts(
            texts, **params, batch_docs=cfg.bm25_stream_batch_docs,
            spill_dir=spill_dir if spill_dir is not None else cache_dir("bm25_stream"))
    return build_bm25(tokenize_all(texts), cfg.bm25_backend, **params)
