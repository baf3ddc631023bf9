"""Data selection, retrieval part: BM25 and dense retrieval from a seed set, token-budget
selections, the general and seed-only baselines, and retrieval quality against the planted
known positives.

Typical use::

    from ssae_utils.retrieval import (RetrievalConfig, build_bm25, query_scores, rank_scores,
                                      select_to_budget, tokenize_all)
    cfg = RetrievalConfig.embedded()
    index = build_bm25(tokenize_all(pool_texts), cfg.bm25_backend)
    idx, scores = rank_scores(query_scores(index, seed_texts, cfg.bm25_query))
    domain = load_profile("embedded").domain("physics")
    sel = select_to_budget(pool, idx, scores, token_counts, domain.token_budget,
                           strategy="bm25", domain=domain.name)
"""

from ssae_utils.retrieval.bm25 import (
    BM25Index, available_bm25_backends, bm25_from_config, build_bm25, query_scores, query_scores_many,
    register_bm25_backend,
)
from ssae_utils.retrieval.bm25_stream import StreamingBM25, token_batches
from ssae_utils.retrieval.config import RetrievalConfig
from ssae_utils.retrieval.dense import DenseIndex, dense_index_from_config, dense_topk, seed_query
from ssae_utils.retrieval.emb_shards import EmbeddingShards, embed_pool, embed_to_shards
from ssae_utils.retrieval.topk import blockwise_topk
from ssae_utils.retrieval.embedders import (
    Embedder, EmbeddingCacheError, available_embedders, embed_cached, embedder_from_config,
    get_embedder, register_embedder,
)
from ssae_utils.retrieval.quality import (
    auroc, jaccard, overlap_matrix, precision_at_k, precision_recall, recall_at_k, score_histograms,
    selection_quality,
)
from ssae_utils.retrieval.selection import (
    Selection, general_baseline, prefilter, rank_scores, seed_only_baseline, select_to_budget,
    token_count_array,
)
from ssae_utils.retrieval.tokenize import STOPWORDS, check_text, check_texts, tokenize, tokenize_all

__all__ = [
    "BM25Index", "DenseIndex", "EmbeddingShards", "StreamingBM25", "blockwise_topk", "bm25_from_config",
    "dense_index_from_config", "embed_pool", "embed_to_shards", "query_scores_many", "token_batches", "auroc", "Embedder", "EmbeddingCacheError", "RetrievalConfig", "STOPWORDS",
    "Selection", "available_bm25_backends", "available_embedders", "build_bm25", "check_text",
    "check_texts", "dense_topk", "embed_cached", "embedder_from_config", "general_baseline",
    "get_embedder", "jaccard", "overlap_matrix", "precision_at_k", "precision_recall",
    "prefilter", "query_scores", "rank_scores", "recall_at_k", "register_bm25_backend",
    "register_embedder", "score_histograms", "seed_only_baseline", "seed_query", "select_to_budget",
    "selection_quality", "token_count_array", "tokenize", "tokenize_all",
]
