"""Dense retrieval: exact cosine top-k over unit-norm embeddings, with faiss or blockwise torch.

``DenseIndex`` searches with one of two exact engines, chosen per request by a fixed rule
(``backend``, the knob ``retrieval.dense_backend``):

- faiss: ``faiss.IndexFlatIP`` (exact inner product; on unit vectors that is cosine
  similarity) over float32 rows in memory, moved to the GPU when ``faiss.get_num_gpus() > 0``
  (faiss-gpu), else on the CPU (faiss-cpu).
- blockwise: ``topk.blockwise_topk``, torch on cuda when present (else cpu) over blocks of
  the rows, which may be float16 memory-mapped shards (``emb_shards.EmbeddingShards``).

The rule: ``"auto"`` (default) uses faiss whenever faiss can serve the request -- float32
rows in memory, and ``k <= FAISS_GPU_MAX_K`` (2048, faiss-gpu's limit) when the index is on
a GPU; faiss-cpu serves any k -- and blockwise otherwise (float16 shards; k > 2048 on a GPU,
e.g. k = pool size). So faiss-gpu is never asked for k > 2048, and a CPU run (smoke,
embedded) is exactly what it was. ``"faiss"`` refuses (ValueError) what faiss cannot serve;
``"blockwise"`` always uses the blockwise search. Both engines are exact; their float32
scores can differ in the last bits (faiss accumulates in float32, blockwise in float64).

Results are sorted by (score descending, pool index ascending), so ties are broken the same
way on every machine and by both engines. (Only for k < n and several documents tied at the
k-th score can the engines return different members of that tie group: faiss picks any,
blockwise the lowest indices. Stage 01 ranks the whole pool, k = n.)

Seed set -> query (``dense_topk``):

- ``mean`` (default): the normalized mean of the seed embeddings (the seed set's centroid
  direction) is one query. The paper embeds "the seed dataset" and ranks by cosine
  similarity; the centroid is the single-query reading of that, it is one search, and it
  ranks documents by closeness to the domain as a whole rather than to one seed outlier.
- ``per_seed_max``: a document's score is its best cosine to any single seed. Exact top-k:
  with faiss each seed's own top-k is searched and the union is ranked by the max (a
  document in the global top-k by max is necessarily in the top-k of the seed that attains
  its max); blockwise reduces over the seeds while scoring (memory O(n), not O(seeds x k)).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from ssae_utils.retrieval.topk import DEFAULT_BLOCK_ROWS, blockwise_topk, default_device

log = logging.getLogger(__name__)

__all__ = ["DenseIndex", "dense_topk", "seed_query", "dense_index_from_config", "DENSE_QUERY_MODES",
           "DENSE_BACKENDS", "FAISS_GPU_MAX_K"]

DENSE_BACKENDS = ("auto", "faiss", "blockwise")
FAISS_GPU_MAX_K = 2048     # faiss-gpu refuses k above this (GPU k-selection limit)


def _as_unit_float32(x: np.ndarray, what: str, atol: float = 1e-3) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array [n, dim], got shape {x.shape}")
    if x.shape[0] and not np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=atol):
        raise ValueError(f"{what} rows must have unit L2 norm (use an Embedder, which normalizes)")
    return x


class DenseIndex:
    """Exact inner-product (cosine) search over the pool's unit-norm embeddings.

    ``embeddings``: a float32/float16 array [n, dim] or ``EmbeddingShards`` (blockwise only:
    faiss would need all rows in RAM as float32). ``backend``: ``"auto"``, ``"faiss"`` or
    ``"blockwise"`` (the rule is in the module docstring). ``device`` and ``block_rows`` are
    the blockwise search's (default: cuda when present, 65,536 rows per block). Sharded rows
    are checked when written (``embed_to_shards``), not again here.
    """

    def __init__(self, embeddings: Any, use_gpu: bool | None = None, *, backend: str = "auto",
                 device: str | None = None, block_rows: int = DEFAULT_BLOCK_ROWS):
        if backend not in DENSE_BACKENDS:
            raise ValueError(f"retrieval.dense_backend must be one of {DENSE_BACKENDS}, not {backend!r}")
        if not isinstance(block_rows, int) or block_rows < 1:
            raise ValueError(f"retrieval.dense_block_rows must be an int >= 1, not {block_rows!r}")
        sharded = hasattr(embeddings, "iter_blocks")
        if sharded and backend == "faiss":
            raise ValueError("retrieval.dense_backend='faiss' needs float32 embeddings in memory, but these "
                             "are memory-mapped shards (retrieval.embedding_dtype='float16'): set "
                             "retrieval.dense_backend='auto' or 'blockwise'")
        half = not sharded and np.asarray(embeddings).dtype == np.float16
        if sharded:
            emb = embeddings
        elif half and backend == "blockwise":                  # kept in float16
            emb = np.asarray(embeddings)
            _as_unit_float32(emb, "pool embeddings", atol=2e-3)
        else:
            emb = _as_unit_float32(embeddings, "pool embeddings", atol=2e-3 if half else 1e-3)
        if len(emb.shape) != 2 or emb.shape[0] == 0:
            raise ValueError("cannot build a dense index over an empty pool")
        self.n_docs, self.dim = int(emb.shape[0]), int(emb.shape[1])
        self.embeddings = emb
        self.backend = backend
        self.device = device or default_device()
        self.block_rows = block_rows
        self.index = None
        self.on_gpu = False
        if backend != "blockwise" and not sharded:
            import faiss

            index = faiss.IndexFlatIP(self.dim)
            gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
            self.on_gpu = bool(gpus > 0 if use_gpu is None else use_gpu and gpus > 0)
            if self.on_gpu:
                index = faiss.index_cpu_to_all_gpus(index)
            index.add(emb)
            self.index = index

    def uses_faiss(self, k: int) -> bool:
        """Whether a top-``k`` request goes to faiss (the rule in the module docstring)."""
        k = int(min(max(k, 1), self.n_docs))
        return self.index is not None and not (self.on_gpu and k > FAISS_GPU_MAX_K)

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = _as_unit_float32(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} != index dimension {self.dim}")
        return q

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [q, k], pool indices int64 [q, k]), best first, ties by index."""
        q = self._check_queries(queries)
        k = int(min(max(k, 1), self.n_docs))
        if not self.uses_faiss(k):
            if self.backend == "faiss":
                raise ValueError(f"faiss-gpu cannot return k={k} > {FAISS_GPU_MAX_K} results: set "
                                 f"retrieval.dense_backend='auto' (blockwise above {FAISS_GPU_MAX_K}) or 'blockwise'")
            return blockwise_topk(self.embeddings, q, k, device=self.device, block_rows=self.block_rows)
        scores, idx = self.index.search(q, k)
        # deterministic tie order: score descending, then pool index ascending
        for r in range(len(q)):
            order = np.lexsort((idx[r], -scores[r]))
            scores[r], idx[r] = scores[r][order], idx[r][order]
        return scores, idx.astype(np.int64)

    def search_max(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by each row's best score to any query: (pool indices int64, scores float64)."""
        q = self._check_queries(queries)
        k = int(min(max(k, 1), self.n_docs))
        if not self.uses_faiss(k) and self.backend != "faiss":
            scores, idx = blockwise_topk(self.embeddings, q, k, reduce="max", device=self.device,
                                         block_rows=self.block_rows)
            return idx[0], scores[0].astype(np.float64)
        scores, idx = self.search(q, k)
        best: dict[int, float] = {}
        for s_row, i_row in zip(scores, idx):
            for s, i in zip(s_row.tolist(), i_row.tolist()):
                if s > best.get(i, -np.inf):
                    best[i] = s
        ids = np.fromiter(best.keys(), dtype=np.int64, count=len(best))
        vals = np.fromiter(best.values(), dtype=np.float64, count=len(best))
        order = np.lexsort((ids, -vals))[:min(k, len(ids))]
        return ids[order], vals[order]


def dense_index_from_config(cfg: Any, embeddings: Any) -> DenseIndex:
    """The ``DenseIndex`` a ``RetrievalConfig`` asks for (``dense_backend``, ``dense_block_rows``)."""
    return DenseIndex(embeddings, backend=cfg.dense_backend, block_rows=cfg.dense_block_rows)


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
    return index.search_max(seeds, k)


def dense_topk(index: DenseIndex, seed_embeddings: np.ndarray, k: int,
               mode: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` pool documents for the seed set: (pool indices int64, scores float64),
    best first. ``k`` >= the pool size ranks the whole pool."""
    if mode not in DENSE_QUERY_MODES:
        raise ValueError(f"unknown dense query mode {mode!r}; modes: {sorted(DENSE_QUERY_MODES)}")
    return DENSE_QUERY_MODES[mode](index, seed_embeddings, k)
