"""End to end on the synthetic smoke corpora: BM25 and dense retrieval find the planted
physics documents better than the random baseline, and every selection meets its budget."""

from __future__ import annotations

import numpy as np

from ssae_utils.data import DataConfig, build_corpora
from ssae_utils.domains import preset_domains
from ssae_utils.retrieval import (DenseIndex, RetrievalConfig, build_bm25, dense_topk,
                                  embed_cached, embedder_from_config, general_baseline,
                                  jaccard, precision_recall, query_scores, rank_scores,
                                  seed_only_baseline, select_to_budget, tokenize_all)


def test_smoke_retrieval_end_to_end(tmp_cache):
    cfg = RetrievalConfig.smoke()
    corpora = build_corpora(DataConfig.smoke())
    pool, seeds = corpora["general_pool"], corpora["physics_seed"]
    counts = {d.doc_id: d.n_words for d in pool + seeds}     # stand-in for LM token counts
    budget = min(preset_domains("smoke")["physics"].token_budget, sum(d.n_words for d in pool) // 4)
    positives = corpora.known_positives("physics")
    assert positives

    index = build_bm25(tokenize_all([d.text for d in pool]), cfg.bm25_backend)
    idx, sc = rank_scores(query_scores(index, [d.text for d in seeds], cfg.bm25_query))
    bm25 = select_to_budget(pool, idx, sc, counts, budget, strategy="bm25", domain="physics")

    emb = embedder_from_config(cfg)
    pool_emb = embed_cached(emb, [d.text for d in pool])
    seed_emb = embed_cached(emb, [d.text for d in seeds])
    didx, dsc = dense_topk(DenseIndex(pool_emb), seed_emb, len(pool), cfg.dense_query)
    dense = select_to_budget(pool, didx, dsc, counts, budget, strategy="dense", domain="physics")

    general = general_baseline(pool, counts, budget, domain="physics", seed=cfg.seed)
    seed_only = seed_only_baseline(seeds, counts, cfg.seed_passes, domain="physics")

    for sel in (bm25, dense, general):
        assert sel.budget_met and sel.total_tokens >= budget
    assert seed_only.passes == cfg.seed_passes and not set(seed_only.doc_ids) & {d.doc_id for d in pool}
    r_bm25 = precision_recall(bm25.doc_ids, positives)["recall"]
    r_dense = precision_recall(dense.doc_ids, positives)["recall"]
    r_general = precision_recall(general.doc_ids, positives)["recall"]
    assert r_bm25 > r_general and r_dense > r_general
    assert 0 <= jaccard(bm25.doc_ids, dense.doc_ids) <= 1
    assert np.all(np.diff(bm25.scores) <= 0)
