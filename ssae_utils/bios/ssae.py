"""The training data of a biographies SSAE: seed bios -> dense retrieval from the general pool.

The same recipe as the physics and toxicity SSAEs (stage 01's Dense strategy): a few seed
documents, their mean embedding as the query (``retrieval.dense_query``), the general pool
ranked by cosine and taken to a token budget. Different selection seeds draw different seed
bios, so each gives its own SSAE.

Why the seed bios are trained on too (``ssae_include_seed_docs``): the stand-in's general
pool holds no scholar or performer biographies (corpus building moved them all into the bios
splits), so retrieval finds neighbours (other people's Wikipedia leads) but never the target
register itself; a handful of seed bios (~1-2k tokens beside a 25k-token selection) adds it.
They come from ``bios_train``, never from the test set.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ssae_utils.data.documents import Document
from ssae_utils.retrieval import DenseIndex, Selection, dense_topk, select_to_budget


def seed_bios(bios_train: Sequence[Document], n: int, seed: int) -> list[Document]:
    """``n`` biographies drawn (seeded) from the training split."""
    if not bios_train:
        raise ValueError("bios_train is empty: the biographies SSAE needs seed documents")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(bios_train), size=min(n, len(bios_train)), replace=False)
    return [bios_train[i] for i in sorted(picked.tolist())]


def dense_selection(pool: Sequence[Document], pool_embeddings: Any, seed_embeddings: np.ndarray,
                    token_counts: Any, budget: int, query_mode: str, allow_short: bool,
                    index: DenseIndex | None = None) -> Selection:
    """The pool ranked by cosine to the seeds and cut at ``budget`` LM tokens (whole documents).
    ``index``: a ``DenseIndex`` over ``pool_embeddings`` to reuse (``dense_index_from_config``;
    default: a new one with the default engine rule, faiss where it can serve k = pool size)."""
    if len(pool) != pool_embeddings.shape[0]:
        raise ValueError(f"{len(pool)} pool documents but {pool_embeddings.shape[0]} pool embeddings")
    index = index if index is not None else DenseIndex(pool_embeddings)
    order, scores = dense_topk(index, seed_embeddings, len(pool), query_mode)
    return select_to_budget(pool, order, scores, token_counts, budget, strategy="dense", domain="bios",
                            allow_short=allow_short)


def training_documents(selection: Selection, pool: Sequence[Document], seeds: Sequence[Document],
                       include_seeds: bool) -> list[Document]:
    by_id = {d.doc_id: d for d in pool}
    docs = [by_id[i] for i in selection.doc_ids]
    return docs + (list(seeds) if include_seeds else [])
