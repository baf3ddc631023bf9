"""Dense retrieval: exact cosine top-k with faiss over unit-norm embeddings.

``DenseIndex`` wraps ``faiss.IndexFlatIP`` (exact inner product; on unit vectors that is
cosine similarity), moved to the GPU when ``faiss.get_num_gpus() > 0`` (faiss-gpu, paper
profile), else on the CPU (faiss-cpu). Results are re-sorted by (score descending, pool
index ascending), so ties are broken the same way on every machine.

Seed set -> query (``dense_topk``):

- ``mean`` (default): the normalized mean of the seed embeddings (the seed set's centroid
  direction) is one query. The paper embeds "the seed dataset" and ranks by cosine
  similarity; the centroid is the single-query reading of that, it is one search, and it
  ranks documents by closeness to the domain as a whole rather than to one seed outlier.
- ``per_seed_max``: a document's score is its best cosine to any single seed. Exact top-k:
  each seed's own top-k is searched and the union is ranked by the max; a document in the
  global top-k by max is necessarily in the top-k of the seed that attains its max.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["DenseIndex", "dense_topk", "seed_query", "DENSE_QUERY_MODES"]


def _as_unit_float32(x: np.ndarray, what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array [n, dim], got shape {x.shape}")
    if x.shape[0] and not np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3):
        raise ValueError(f"{what} rows must have unit L2 norm (use an Embedder, which normalizes)")
    return x


class DenseIndex:
    """Exact inner-product (cosine) search over the pool's unit-norm embeddings."""

    def __init__(self, embeddings: np.ndarray, use_gpu: bool | None = None):
        import faiss

        emb = _as_unit_float32(embeddings, "pool embeddings")
        if emb.shape[0] == 0:
            raise ValueError("cannot build a dense index over an empty pool")
        self.n_docs, self.dim = emb.shape
        index = faiss.IndexFlatIP(self.dim)
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        self.on_gpu = bool(gpus > 0 if use_gpu is None else use_gpu and gpus > 0)
        if self.on_gpu:
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(emb)
        self.index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [q, k], pool indices int64 [q, k]), best first, ties by index."""
        q = _as_unit_float32(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} != index dimension {self.dim}")
        k = int(min(max(k, 1), self.n_docs))
        scores, idx = self.index.search(q, k)
        # deterministic tie order: score descending, then pool index ascending
        for r in range(len(q)):
            order = np.lexsort((idx[r], -scores[r]))
            scores[r], idx[r] = scores[r][order], idx[r][order]
        return scores, idx.astype(np.int64)


DENSE_QUERY_MODES: dict[str, Callable[[DenseIndex, np.ndarray, int], tuple[np.ndarray, np.ndarray]]] = {}


def _mode(name: str):
    def wrap(fn):
        DENSE_QUERY_MODES[name] = fn
        return fn
    return wrap


def seed_query(seed_embeddings: np.ndarray) -> np.ndarray:
    """The normalized mean of the seed embeddings, shape [1, dim]."""
    seeds = _as_unit_float32(seed_embeddings, "seed embeddings")
    if seeds.shape[0] == 0:
        raise ValueError("the seed set is empty: dense retrieval needs at least one seed embedding")
    centroid = seeds.astype(np.float64).mean(axis=0)
    norm = np.linalg.norm(centroid)
    if norm < 1e-12:
        raise ValueError("the seed embeddings cancel out (their mean is the zero vector)")
    return (centroid / norm).astype(np.float32)[None, :]


@_mode("mean")
def _mean(index: DenseIndex, seeds: np.ndarray, k: int):
    scores, idx = index.search(seed_query(seeds), k)
    return idx[0], scores[0].astype(np.float64)


@_mode("per_seed_max")
def _per_seed_max(index: DenseIndex, seeds: np.ndarray, k: int):
    seeds = _as_unit_float32(seeds, "seed embeddings")
    if seeds.shape[0] == 0:
        raise ValueError("the seed set is empty: dense retrieval needs at least one seed embedding")
    scores, idx = index.search(seeds, k)
    best: dict[int, float] = {}
    for s_row, i_row in zip(scores, idx):
        for s, i in zip(s_row.tolist(), i_row.tolist()):
            if s > best.get(i, -np.inf):
                best[i] = s
    ids = np.fromiter(best.keys(), dtype=np.int64, count=len(best))
    vals = np.fromiter(best.values(), dtype=np.float64, count=len(best))
    order = np.lexsort((ids, -vals))[:min(k, len(ids))]
    return ids[order], vals[order]


def dense_topk(index: DenseIndex, seed_embeddings: np.ndarray, k: int,
               mode: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` pool documents for the seed set: (pool indices int64, scores float64),
    best first. ``k`` >= the pool size ranks the whole pool."""
    if mode not in DENSE_QUERY_MODES:
        raise ValueError(f"unknown dense query mode {mode!r}; modes: {sorted(DENSE_QUERY_MODES)}")
    return DENSE_QUERY_MODES[mode](index, seed_embeddings, k)
