"""Okapi BM25 (rank-bm25's ``BM25Okapi``, exactly) computed in passes over a stream of
tokenized document batches: the corpus is never held as Python token lists.

The formula is the one in ``bm25.py``::

    score(d, q) = sum over query tokens t (with repeats) of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = log(N - df(t) + 0.5) - log(df(t) + 0.5); a negative idf -> epsilon * mean idf,
    mean idf = the mean of the raw idf over every distinct term of the corpus; a term the
    corpus never holds scores 0. (One deliberate difference, shared with the sparse backend:
    with b = 1 an empty document scores 0, where rank-bm25 computes 0/0 = NaN.)

Passes (``batches`` is a function returning a fresh iterable of batches, each a list of
token lists, e.g. ``token_batches(texts, 8192)``, which tokenizes one batch at a time):

1. at construction, once per corpus: document lengths (int32 [N]), N, avgdl, and the
   document frequency of every term through ``doc_freq.HashedDocFreq`` (128-bit term keys
   spilled to disk, merged a partition at a time: ``n_terms`` and the mean idf, plus a df
   table on disk for looking up any query term);
2. per request (``score``, ``score_many``, ``score_reduced``, ``score_specs``): one pass
   that, per batch, counts the query terms in each document (a CSR matrix [batch, query
   vocabulary]), turns it into BM25 weights and multiplies by the queries' term counts.
   Several queries, and several seed-set query modes, share one pass (``score_specs``). The
   pass recounts each query term's df exactly and raises if the hashed table disagreed, and
   it checks that the stream yields the same documents as in pass 1.

Memory: 4 bytes per document (lengths) + 8 bytes per document per result kept (a ``sum``
or ``max`` reduction over seeds keeps one float64 per document; ``score_many`` keeps one per
query and document) + one batch of token lists + pass 1's partition merge
(``doc_freq``: ~60 bytes x spilled records / partitions). OpenWebText (8M documents): ~32 MB
of lengths and 64 MB per result, against tens of GB for token lists or a CSR index.
"""

from __future__ import annotations

import math
import weakref
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from ssae_utils.retrieval.bm25 import register_bm25_backend
from ssae_utils.retrieval.doc_freq import HashedDocFreq
from ssae_utils.retrieval.tokenize import tokenize_all

__all__ = ["StreamingBM25", "TokenBatches", "token_batches", "list_batches", "REDUCTIONS"]

TokenBatches = Callable[[], Iterable[Sequence[Sequence[str]]]]
REDUCTIONS = ("sum", "max", "none")
DEFAULT_BATCH_DOCS = 8192


def token_batches(texts: Sequence[str], batch_docs: int = DEFAULT_BATCH_DOCS) -> TokenBatches:
    """A re-iterable stream over ``texts``, tokenized (``tokenize.tokenize``) one batch at a time."""
    _check_batch_docs(batch_docs)

    def stream() -> Iterator[list[list[str]]]:
        for start in range(0, len(texts), batch_docs):
            yield tokenize_all(texts[start:start + batch_docs])
    return stream


def list_batches(corpus_tokens: Sequence[Sequence[str]], batch_docs: int = DEFAULT_BATCH_DOCS) -> TokenBatches:
    """A re-iterable stream over an already tokenized corpus (tests, ``build_bm25``)."""
    _check_batch_docs(batch_docs)

    def stream() -> Iterator[Sequence[Sequence[str]]]:
        for start in range(0, len(corpus_tokens), batch_docs):
            yield corpus_tokens[start:start + batch_docs]
    return stream


def _check_batch_docs(batch_docs: int) -> None:
    if not isinstance(batch_docs, int) or batch_docs < 1:
        raise ValueError(f"batch_docs (retrieval.bm25_stream_batch_docs) must be an int >= 1, not {batch_docs!r}")


@register_bm25_backend("streaming")
class StreamingBM25:
    """BM25Okapi over a stream of document batches (see the module docstring).

    ``StreamingBM25(corpus_tokens)`` (what ``build_bm25(..., "streaming")`` calls) streams a
    tokenized list in ``batch_docs`` slices; ``StreamingBM25.from_texts(texts)`` tokenizes
    while streaming; ``StreamingBM25(batches=fn)`` takes any re-iterable stream.
    """

    def __init__(self, corpus_tokens: Sequence[Sequence[str]] | None = None, k1: float = 1.5,
                 b: float = 0.75, epsilon: float = 0.25, *, batches: TokenBatches | None = None,
                 batch_docs: int = DEFAULT_BATCH_DOCS, spill_dir: str | Path | None = None,
                 partitions: int = 64):
        if (corpus_tokens is None) == (batches is None):
            raise ValueError("give StreamingBM25 exactly one of corpus_tokens or batches")
        if batches is None:
            batches = list_batches(corpus_tokens, batch_docs)
        if not callable(batches):
            raise TypeError("batches must be a function returning a fresh iterable of batches "
                            "(a generator can be read only once, and BM25 needs two passes): "
                            "e.g. token_batches(texts, batch_docs)")
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self.batches = batches
        self._df = HashedDocFreq(spill_dir, partitions)
        self._cleanup = weakref.finalize(self, self._df.close)
        self._corpus_pass()

    @classmethod
    def from_texts(cls, texts: Sequence[str], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
                   *, batch_docs: int = DEFAULT_BATCH_DOCS, spill_dir: str | Path | None = None) -> "StreamingBM25":
        return cls(batches=token_batches(texts, batch_docs), k1=k1, b=b, epsilon=epsilon, spill_dir=spill_dir)

    # --- pass 1 ------------------------------------------------------------------------------
    def _corpus_pass(self) -> None:
        lengths = []
        for batch in self.batches():
            lengths.append(np.fromiter((len(d) for d in batch), dtype=np.int64, count=len(batch)))
            self._df.add_batch(batch)
        doc_len = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        if len(doc_len) == 0:
            raise ValueError("cannot build a BM25 index over an empty corpus (the batch stream yielded no documents)")
        total = int(doc_len.sum())
        if total == 0:
            raise ValueError("every document of the corpus is empty after tokenization")
        if doc_len.max() > np.iinfo(np.int32).max:
            raise ValueError("a document holds more than 2^31 tokens")
        self.doc_len = doc_len.astype(np.int32)
        self.n_docs = len(doc_len)
        self.avgdl = total / self.n_docs                       # Python division, as rank-bm25
        self._df.finalize(self.n_docs)
        self.n_terms = self._df.n_terms
        self.average_idf = self._df.idf_sum / self.n_terms
        self._norm_cache: np.ndarray | None = None

    def idf(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(idf float64, df int64), each [len(terms)]: rank-bm25's idf with the epsilon floor
        (0 for a term the corpus never holds) and the df it comes from (the hashed table)."""
        df = self._df.lookup(list(terms))
        return np.array([self._idf_of(int(f)) for f in df], dtype=np.float64), df

    def _idf_of(self, df: int) -> float:
        if df == 0:
            return 0.0
        raw = math.log(self.n_docs - df + 0.5) - math.log(df + 0.5)
        return self.epsilon * self.average_idf if raw < 0 else raw

    # --- pass 2 ------------------------------------------------------------------------------
    def score_specs(self, specs: Sequence[tuple[Sequence[Sequence[str]], str]]) -> list[np.ndarray]:
        """One pass for several requests. Each spec is ``(queries, reduce)``: a list of
        tokenized queries and ``"sum"`` / ``"max"`` (float64 [N]: the sum / max over the
        queries of each document's score) or ``"none"`` (float64 [n_queries, N])."""
        for queries, reduce in specs:
            if reduce not in REDUCTIONS:
                raise ValueError(f"unknown reduction {reduce!r}; reductions: {REDUCTIONS}")
            if reduce != "none" and len(queries) == 0:
                raise ValueError(f"a {reduce!r} reduction needs at least one query")
        vocab: dict[str, int] = {}
        for queries, _ in specs:
            for q in queries:
                for t in q:
                    vocab.setdefault(t, len(vocab))
        terms = list(vocab)
        idf, df_table = self.idf(terms)
        counts = []                                    # per spec: dense [n_vocab, n_queries]
        for queries, _ in specs:
            c = np.zeros((len(terms), len(queries)))
            for j, q in enumerate(queries):
                for t in q:
                    c[vocab[t], j] += 1.0
            counts.append(c)
        outs = [np.zeros((len(q), self.n_docs)) if r == "none" else np.empty(self.n_docs) for q, r in specs]
        df_seen = np.zeros(len(terms), dtype=np.int64)
        start = 0
        get = vocab.get
        for batch in self.batches():
            n = len(batch)
            lengths = np.fromiter((len(d) for d in batch), dtype=np.int64, count=n)
            if start + n > self.n_docs or not np.array_equal(lengths, self.doc_len[start:start + n]):
                raise ValueError("the document stream changed between passes (other documents or "
                                 "another order): `batches` must yield the same corpus every time")
            weights = self._batch_weights(batch, lengths, get, len(terms), idf, df_seen)
            for out, c, (_, reduce) in zip(outs, counts, specs):
                if c.shape[1] == 0:
                    continue
                s = np.asarray(weights @ c)                    # [n, n_queries]
                if reduce == "none":
                    out[:, start:start + n] = s.T
                elif reduce == "sum":
                    out[start:start + n] = s.sum(axis=1)
                else:
                    out[start:start + n] = s.max(axis=1)
            start += n
        if start != self.n_docs:
            raise ValueError(f"the document stream changed between passes: {start} documents "
                             f"now, {self.n_docs} when the index was built")
        bad = np.flatnonzero(df_seen != df_table)
        if len(bad):  # a 128-bit key collision in the df table (never expected)
            raise RuntimeError(f"hashed document frequencies disagree with the exact count for "
                               f"{[terms[i] for i in bad[:5]]}; rebuild with another spill folder")
        return outs

    def _batch_weights(self, batch, lengths, get, n_terms, idf, df_seen) -> sp.csr_matrix:
        n = len(batch)
        flat = np.fromiter((get(t, -1) for doc in batch for t in doc), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keep = flat >= 0
        tf = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], flat[keep])), shape=(n, n_terms))
        tf.sum_duplicates()
        df_seen += np.bincount(tf.indices, minlength=n_terms)
        norm = self.k1 * (1 - self.b + self.b * lengths / self.avgdl)
        row_of = np.repeat(np.arange(n), np.diff(tf.indptr))
        data = tf.data
        tf.data = idf[tf.indices] * data * (self.k1 + 1) / (data + norm[row_of])
        return tf

    # --- BM25Index protocol and seed-set reductions --------------------------------------------
    def score(self, query: Sequence[str]) -> np.ndarray:
        """float64 [N] for one tokenized query (one pass)."""
        return self.score_specs([([list(query)], "sum")])[0]

    def score_many(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """float64 [n_queries, N] (one pass; 8 bytes per query and document)."""
        if len(queries) == 0:
            return np.zeros((0, self.n_docs))
        return self.score_specs([([list(q) for q in queries], "none")])[0]

    def score_reduced(self, queries: Sequence[Sequence[str]], reduce: str) -> np.ndarray:
        """float64 [N]: the ``"sum"`` or ``"max"`` over the queries, without [n_queries, N]."""
        return self.score_specs([([list(q) for q in queries], reduce)])[0]
