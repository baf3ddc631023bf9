"""Exact blockwise inner-product top-k with torch, over in-memory or memory-mapped embeddings.

For queries Q [q, dim] and pool rows X [n, dim] (``np.ndarray`` or ``EmbeddingShards``,
float32 or float16), ``blockwise_topk`` returns, per query, the ``k`` rows with the largest
``x . q`` -- every row is scored (exact search, no approximation), ``block_rows`` rows at a
time, moved to ``device`` (cuda when present, else cpu).

Precision and ties: a block is cast to float64 on the device and multiplied by the float64
queries, and the scores are rounded to float32 (faiss's output precision). A float16 or
float32 entry times a float32 query entry is exact in float64, so the float32 score is the
correctly rounded dot product up to float64 summation error (~1e-16): exact duplicate rows
always get the same score wherever they sit, and the order is (score descending, pool index
ascending) by a stable sort, the tie rule ``DenseIndex`` applies to faiss's output. For
k < n, of several rows tied at the k-th score the lowest pool indices are kept (the prefix
of the full tie-sorted ranking); faiss may return any of them.

Two strategies, the same result:

- running top-k (``k * 4 < n``): per block, the running best ``k`` and the block's rows at or
  above its own k-th score are merged by a stable sort (the running rows come first and hold
  smaller pool indices, so ties stay index-ordered). Device memory: ``block_rows x (dim x 10
  + q x 12)`` bytes + ``q x k x 12``.
- full sort (``k * 4 >= n``, e.g. k = n to rank the whole pool): all ``q x n`` float32 scores
  are kept on the device and stable-sorted once: ``q x n x 16`` bytes (8M documents, one
  query: 128 MB).

``reduce="max"``: the scores are first reduced over the queries (each row's best score to any
query; ``dense.py``'s ``per_seed_max``), giving one ranking.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

__all__ = ["blockwise_topk", "iter_row_blocks", "default_device", "DEFAULT_BLOCK_ROWS"]

DEFAULT_BLOCK_ROWS = 65_536


def default_device() -> str:
    from ssae_utils.device import resolve_device

    return resolve_device("auto")


def iter_row_blocks(embeddings: Any, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start row, rows) blocks of at most ``block_rows`` rows over an array or shards."""
    if hasattr(embeddings, "iter_blocks"):
        yield from embeddings.iter_blocks(block_rows)
        return
    for start in range(0, embeddings.shape[0], block_rows):
        yield start, embeddings[start:start + block_rows]


def blockwise_topk(embeddings: Any, queries: np.ndarray, k: int, *, reduce: str | None = None,
                   device: str | None = None, block_rows: int = DEFAULT_BLOCK_ROWS,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32 [q', k], pool indices int64 [q', k]), best first, ties by pool index;
    ``q' = 1`` with ``reduce="max"``, else the number of queries. ``k`` is clipped to [1, n]."""
    import torch

    if reduce not in (None, "max"):
        raise ValueError(f"reduce must be None or 'max', not {reduce!r}")
    if not isinstance(block_rows, int) or block_rows < 1:
        raise ValueError(f"block_rows (retrieval.dense_block_rows) must be an int >= 1, not {block_rows!r}")
    n, dim = int(embeddings.shape[0]), int(embeddings.shape[1])
    q = np.asarray(queries)
    if q.ndim != 2 or q.shape[1] != dim or q.shape[0] == 0:
        raise ValueError(f"queries must be [n_queries >= 1, {dim}], got shape {q.shape}")
    if n == 0:
        raise ValueError("cannot search an empty pool")
    k = int(min(max(k, 1), n))
    dev = torch.device(device or default_device())
    qt = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64)).to(dev)
    n_out = 1 if reduce == "max" else qt.shape[0]
    full = k * 4 >= n
    if full:
        all_scores = torch.empty((n_out, n), dtype=torch.float32, device=dev)
    else:
        best_s = torch.empty((n_out, 0), dtype=torch.float32, device=dev)
        best_i = torch.empty((n_out, 0), dtype=torch.int64, device=dev)
    seen = 0
    for start, rows in iter_row_blocks(embeddings, block_rows):
        if start != seen:
            raise ValueError(f"embedding blocks are out of order (block at row {start}, expected {seen})")
        block = torch.from_numpy(np.require(rows, requirements=["C", "W"])).to(dev).to(torch.float64)
        s = (block @ qt.T).T                                          # [q, b] float64
        if reduce == "max":
            s = s.max(dim=0, keepdim=True).values
        s = s.to(torch.float32)
        b = s.shape[1]
        if full:
            all_scores[:, start:start + b] = s
        else:
            kb = min(k, b)
            kth = torch.topk(s, kb, dim=1).values[:, -1:]             # each row's k-th best in the block
            idx = torch.arange(start, start + b, device=dev)
            new_s, new_i = [], []
            for r in range(n_out):                                     # keep ties at the k-th score
                keep = s[r] >= kth[r]
                new_s.append(torch.cat([best_s[r], s[r][keep]]))
                new_i.append(torch.cat([best_i[r], idx[keep]]))
            width = max(len(x) for x in new_s)
            merged_s = torch.full((n_out, width), -torch.inf, device=dev)
            merged_i = torch.full((n_out, width), torch.iinfo(torch.int64).max, device=dev)
            for r in range(n_out):
                merged_s[r, :len(new_s[r])] = new_s[r]
                merged_i[r, :len(new_i[r])] = new_i[r]
            order = torch.sort(-merged_s, dim=1, stable=True).indices[:, :k]
            best_s, best_i = torch.gather(merged_s, 1, order), torch.gather(merged_i, 1, order)
        seen = start + b
    if seen != n:
        raise ValueError(f"the embedding blocks cover {seen} rows, expected {n}")
    if full:
        order = torch.sort(-all_scores, dim=1, stable=True).indices[:, :k]
        best_s, best_i = torch.gather(all_scores, 1, order), order
    return best_s.cpu().numpy(), best_i.cpu().numpy().astype(np.int64)
