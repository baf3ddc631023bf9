"""Stage 01: expand each subdomain's seed set from the general pool (paper §2.3, §3.2).

For every subdomain of the profile (``cfg.domains``), with its seed split as the query, this
builds four selections of the domain's LM-token budget: BM25 (exact Okapi scores), dense retrieval (embeddings + exact
cosine top-k), the general-corpus baseline (a seeded random sample, the paper's "OWT baseline")
and the seed-only baseline ("Validation": the seeds alone, several passes). It measures
retrieval quality against the documents planted in the pool (precision, recall,
precision@k) and the overlap between strategies, and it stores each retriever's top
candidates (the prefilter) for SAE-TracIn reranking in stage 02.

Scale knobs (``retrieval.*``; the paper preset sets them for an OpenWebText-sized pool):
``bm25_backend="streaming"`` scores every domain's seed queries (each query mode the stage
reports) in one pass over batches of the pool, never holding it as token lists;
``embedding_dtype="float16"`` stores the pool embeddings as memory-mapped shards, searched by
the blockwise top-k (``dense_backend="auto"`` picks faiss only where faiss can serve the
request). The smoke and embedded defaults ("sparse", "float32", faiss-cpu) are unchanged.

Everything is written to ``results/<profile>/01_retrieval.json``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from ssae_utils.config import ProfileConfig
from ssae_utils.data.corpora import Corpora, build_corpora
from ssae_utils.data.documents import Document
from ssae_utils.domains import Domain
from ssae_utils.io import stable_hash
from ssae_utils.model.registry import load_model
from ssae_utils.paths import results_dir
from ssae_utils.results import RetrievalResults, read_stage, write_results
from ssae_utils.retrieval import (
    DenseIndex,
    Selection,
    bm25_from_config,
    dense_index_from_config,
    dense_topk,
    embed_cached,
    embed_pool,
    embedder_from_config,
    general_baseline,
    overlap_matrix,
    precision_at_k,
    precision_recall,
    prefilter,
    query_scores_many,
    rank_scores,
    score_histograms,
    seed_only_baseline,
    select_to_budget,
)
from ssae_utils.retrieval.selection import token_count_array
from ssae_utils.token_counts import document_token_counts

log = logging.getLogger(__name__)

RESULTS_FILE = RetrievalResults.FILE
RANK_KS = (10, 50, 100, 500)
BM25_REPORTED_MODES = ("concatenated", "per_seed_max")   # _bm25_query_modes compares these
HIST_BINS = 40


def inputs_key(cfg: ProfileConfig) -> str:
    """Hash of every setting stage 01's output depends on: data and each domain's documents
    and budget, model (tokenizer: budgets), retrieval minus the ``tracin_*`` knobs (stage 02
    reads those). Stage 02 checks it."""
    retrieval = {k: v for k, v in cfg.retrieval.to_dict().items() if not k.startswith("tracin_")}
    plain = cfg.to_dict()
    domains = {name: {**d.data_key(), "token_budget": d.token_budget} for name, d in cfg.domains.items()}
    return stable_hash({"data": plain["data"], "domains": domains, "model": plain["model"], "retrieval": retrieval})


def _ranking_quality(ranked_ids: Sequence[str], positives: set[str]) -> dict[str, float]:
    return {f"precision_at_{k}": precision_at_k(ranked_ids, positives, k) for k in RANK_KS if k <= len(ranked_ids)}


def bm25_modes(rcfg) -> list[str]:
    """The BM25 query modes stage 01 scores: the configured one first, then the reported ones."""
    return [rcfg.bm25_query] + [m for m in BM25_REPORTED_MODES if m != rcfg.bm25_query]


def _bm25_query_modes(rcfg, bm25_scores, pool, count_array, budget, positives, used_ranking) -> dict[str, Any]:
    """How the seed set becomes a BM25 query matters: quality of each mode's selection at the
    same budget ("per_seed_sum" is left out: it equals "concatenated" by construction).
    ``used_ranking`` is the ranking of the configured mode, already computed; ``bm25_scores``
    holds every mode's raw scores (``query_scores_many``)."""
    out = {}
    for mode in BM25_REPORTED_MODES:
        if mode == rcfg.bm25_query:
            order, scores = used_ranking
        else:
            order, scores = rank_scores(bm25_scores[mode])
        sel = select_to_budget(pool, order, scores, count_array, budget, strategy=f"bm25_{mode}",
                               domain="", allow_short=rcfg.allow_short_budget)
        ranked_ids = [pool[i].doc_id for i in order[:100]]
        out[mode] = {**precision_recall(sel.doc_ids, positives), "n_docs": sel.n_docs,
                     "precision_at_50": precision_at_k(ranked_ids, positives, 50),
                     "used": mode == rcfg.bm25_query}
    return out


def select_domain(
    cfg: ProfileConfig,
    corpora: Corpora,
    domain: Domain,
    counts: dict[str, int],
    bm25_scores: dict[str, np.ndarray],
    dense_index: DenseIndex,
    embedder: Any,
) -> dict[str, Any]:
    """All stage-01 selections and diagnostics for one subdomain. ``bm25_scores``: the raw
    BM25 scores of the pool for this domain's seed set, per query mode (``bm25_modes``)."""
    rcfg = cfg.retrieval
    pool: list[Document] = corpora["general_pool"]
    seeds: list[Document] = corpora[domain.split("seed")]
    if not seeds:
        raise ValueError(f"the {domain.name} seed split is empty: check domains.{domain.name} (its source and seed_words)")
    budget = domain.token_budget
    positives = {d.doc_id for d in corpora.known_positives(domain.name)}
    is_positive = np.array([d.doc_id in positives for d in pool])
    pool_ids = [d.doc_id for d in pool]
    count_array = token_count_array(pool, counts)

    rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rankings["bm25"] = rank_scores(bm25_scores[rcfg.bm25_query])
    seed_emb = embed_cached(embedder, [d.text for d in seeds])
    rankings["dense"] = dense_topk(dense_index, seed_emb, len(pool), rcfg.dense_query)

    selections: dict[str, Selection] = {
        "general": general_baseline(pool, counts, budget, domain=domain.name, seed=rcfg.seed),
        "seed_only": seed_only_baseline(seeds, counts, rcfg.seed_passes, domain=domain.name),
    }
    diagnostics: dict[str, Any] = {"score_histograms": {}, "ranking_quality": {}, "prefilter": {}}
    for name, (order, scores) in rankings.items():
        selections[name] = select_to_budget(
            pool, order, scores, counts, budget, strategy=name, domain=domain.name, allow_short=rcfg.allow_short_budget
        )
        by_index = np.empty(len(pool))
        by_index[order] = scores
        diagnostics["score_histograms"][name] = score_histograms(by_index, is_positive, HIST_BINS)
        ranked_ids = [pool_ids[i] for i in order]
        diagnostics["ranking_quality"][name] = _ranking_quality(ranked_ids, positives)
        keep = prefilter(order, count_array, int(np.ceil(rcfg.prefilter_budget_multiple * budget)))
        diagnostics["prefilter"][name] = {
            "doc_ids": [pool_ids[i] for i in keep],
            "scores": [float(by_index[i]) for i in keep],
            "tokens": int(sum(counts[pool_ids[i]] for i in keep)),
        }

    diagnostics["bm25_query_modes"] = _bm25_query_modes(rcfg, bm25_scores, pool, count_array, budget, positives, rankings["bm25"])
    quality = {
        name: {**precision_recall(sel.doc_ids, positives), **sel.summary()} for name, sel in selections.items()
    }
    return {
        "budget": budget,
        "n_seed_docs": len(seeds),
        "seed_tokens": int(sum(counts[d.doc_id] for d in seeds)),
        "n_known_positives": len(positives),
        "selections": {name: sel.to_dict() for name, sel in selections.items()},
        "quality": quality,
        "overlap_jaccard": overlap_matrix({name: sel.doc_ids for name, sel in selections.items()}),
        **diagnostics,
    }


def load_stage01(cfg: ProfileConfig) -> RetrievalResults:
    """Stage 01's results for later stages, refusing ones written for other data, model or
    retrieval settings (the ``tracin_*`` knobs aside)."""
    path = results_dir(cfg.name) / RESULTS_FILE
    results = read_stage(cfg, RetrievalResults)
    if results.inputs_key != inputs_key(cfg):
        raise ValueError(
            f"{path} was written with other data/model/retrieval settings than this run's "
            f"(the TracIn knobs aside); rerun notebook 01 with the same profile and overrides "
            f"(python run_all.py --profile {cfg.name} --only 01 02)."
        )
    return results


QUALITY_COLUMNS = ("n_docs", "total_tokens", "passes", "training_tokens", "hits", "precision", "recall", "f1")


def quality_rows(results: dict[str, Any], columns: Sequence[str] = QUALITY_COLUMNS) -> list[dict[str, Any]]:
    """One row per domain and strategy of a stage-01/02 results file (the notebooks' table)."""
    return [{"domain": domain, "strategy": name, **{k: q[k] for k in columns}}
            for domain, d in results["domains"].items() for name, q in d["quality"].items()]


def run_retrieval(cfg: ProfileConfig) -> RetrievalResults:
    """The whole of stage 01; returns and saves its results."""
    from ssae_utils import dist

    dist.apply_threads()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)  # only its tokenizer is used: budgets are in LM tokens
    # split by split (a DocumentTable pool is counted from its text column, batch by batch)
    counts: dict[str, int] = {}
    for split in ["general_pool", *(dom.split("seed") for dom in cfg.domains.values())]:
        docs = corpora[split]
        ids = docs.doc_ids if hasattr(docs, "doc_ids") else [d.doc_id for d in docs]
        counts.update(zip(ids, document_token_counts(docs, model.tokenizer, model.fingerprint)))
    timings["corpora_and_token_counts_s"] = time.perf_counter() - t

    for domain in cfg.domains.values():
        if not corpora[domain.split("seed")]:
            raise ValueError(f"the {domain.name} seed split is empty: check domains.{domain.name} (its source and seed_words)")
    # run_all --nproc: torchrun ranks embed the pool into the cache now (only that is
    # spread); embed_pool below then reads it. Its time counts as the embedding's.
    t = time.perf_counter()
    dist.launch_if_requested("retrieval", cfg)
    spread_s = time.perf_counter() - t
    t = time.perf_counter()
    pool_texts = corpora.texts("general_pool")
    bm25 = bm25_from_config(cfg.retrieval, pool_texts)
    timings["bm25_index_s"] = time.perf_counter() - t
    t = time.perf_counter()
    seed_texts = {name: [d.text for d in corpora[dom.split("seed")]] for name, dom in cfg.domains.items()}
    bm25_scores = query_scores_many(bm25, seed_texts, bm25_modes(cfg.retrieval))
    del bm25
    timings["bm25_queries_s"] = time.perf_counter() - t

    t = time.perf_counter()
    embedder = embedder_from_config(cfg.retrieval, device=cfg.model.resolved_device)
    pool_emb = embed_pool(cfg.retrieval, embedder, pool_texts)
    timings["embed_pool_s"] = spread_s + time.perf_counter() - t
    dense_index = dense_index_from_config(cfg.retrieval, pool_emb)

    domains = {}
    for name, domain in cfg.domains.items():
        t = time.perf_counter()
        domains[name] = select_domain(cfg, corpora, domain, counts, bm25_scores[name], dense_index, embedder)
        timings[f"select_{name}_s"] = time.perf_counter() - t

    results = RetrievalResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "inputs_key": inputs_key(cfg),
        "retrieval_config": cfg.retrieval.to_dict(),
        "embedder": embedder.identity(),
        "pool": {"docs": len(pool_texts), "tokens": int(sum(counts[d.doc_id] for d in corpora["general_pool"]))},
        "domains": domains,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    })
    write_results(cfg, results)
    return results
