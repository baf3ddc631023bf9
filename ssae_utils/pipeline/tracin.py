"""Stage 02: SAE-TracIn reranking of the first-stage candidates (paper §2.3, §3.2).

For each subdomain and each first-stage retriever (BM25, dense), stage 01 stored a candidate
pool (its top documents up to ``prefilter_budget_multiple`` x the token budget). Here every
candidate document z gets the score

    TracIn(z, seed) = < grad_w L(z), grad_w L(seed) >

at the GSAE's weights w, with L the SAE loss averaged over a token set (ssae_utils.tracin:
one backward pass for the seed gradient, then a closed form per candidate token). The
candidates are reranked by it and cut to the same token budget as every other strategy,
giving BM25-TracIn and Dense-TracIn. The score does not depend on who proposed the document,
so the union of both retrievers' candidates is cached and scored once per subdomain.

Diagnostics, against the documents planted in the pool: precision/recall of the selections
(next to stage 01's four strategies), how well each score separates planted documents among
the candidates (AUROC, precision@k: TracIn vs the first-stage score), the rank correlation
between the two scores, and the overlap of all six selections.

Everything is written to ``results/<profile>/02_tracin.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from ssae_utils.activations import ActivationStore
from ssae_utils.config import ProfileConfig
from ssae_utils.data.corpora import Corpora, build_corpora, find_documents
from ssae_utils.data.documents import Document
from ssae_utils.io import atomic_path, stable_hash
from ssae_utils.model.registry import load_model
from ssae_utils.paths import cache_dir
from ssae_utils.pipeline.failures import check_item_failures
from ssae_utils.pipeline.foundation import load_saved_gsae
from ssae_utils.pipeline.retrieval import load_stage01
from ssae_utils.retrieval import (
    Selection,
    auroc,
    overlap_matrix,
    precision_at_k,
    precision_recall,
    rank_scores,
    score_histograms,
    select_to_budget,
)
from ssae_utils.results import RetrievalDomain, TracinResults, write_results
from ssae_utils.retrieval.config import RetrievalConfig
from ssae_utils.token_counts import document_token_counts
from ssae_utils.tracin import TracInConfig, seed_gradient, tracin_scores, tracin_token_sums

log = logging.getLogger(__name__)

RESULTS_FILE = TracinResults.FILE
RETRIEVERS = ("bm25", "dense")
HIST_BINS = 30


# ------------------------------------------------------------------ inputs from stages 00/01
@dataclass(frozen=True)
class TracInSettings:
    """The loss TracIn differentiates, resolved once per run from ``retrieval.tracin_*`` and
    the GSAE: the score's own settings and the data-side ones, with where lambda came from."""

    score: TracInConfig
    l1_coefficient_source: str
    norm_threshold: float | None        # tokens above it are left out (None: keep all)
    max_doc_tokens: int | None          # each candidate scored from its first this-many tokens
    stream: bool = False                # candidates computed chunk by chunk, never cached

    def to_dict(self) -> dict[str, Any]:
        return {"l1_coefficient": self.score.l1_coefficient, "l1_coefficient_source": self.l1_coefficient_source,
                "l1_weighting": self.score.l1_weighting, "params": list(self.score.params),
                "norm_threshold": self.norm_threshold, "max_doc_tokens": self.max_doc_tokens,
                **({"stream": True} if self.stream else {})}


def tracin_settings(rcfg: RetrievalConfig, training: dict[str, Any]) -> TracInSettings:
    """lambda, L1 form and outlier threshold of the loss TracIn differentiates, with where
    each came from (all recorded in the results); ``training`` is the GSAE's training info
    (00_setup.json ``gsae.training``)."""
    threshold = training.get("norm_threshold")
    if not rcfg.tracin_drop_outliers or threshold is None or not math.isfinite(threshold):
        threshold = None
    if rcfg.tracin_l1_coefficient is not None:
        lam, source = float(rcfg.tracin_l1_coefficient), "retrieval.tracin_l1_coefficient"
    elif training.get("source") == "pretrained" and training.get("l1_coefficient_raw") is not None:
        # stage 00 converted the release's own lambda to raw units (ssae_utils.sae.pretrained)
        lam = float(training["l1_coefficient_raw"])
        source = f"pretrained GSAE: {training.get('l1_coefficient_source', 'its cfg.json')}, in raw activation units"
    elif training.get("source") != "pretrained" and "l1_coefficient" in training.get("config", {}):
        scale = training.get("norm_scaling_factor") or 1.0
        lam = float(training["config"]["l1_coefficient"]) / float(scale)
        source = (f"GSAE training lambda {training['config']['l1_coefficient']} / norm scaling "
                  f"factor {scale:.6g} (folded into the weights)")
    else:
        scale = training.get("norm_scaling_factor")
        hint = f"; lambda 1 in the sweep's units is {1 / float(scale):.4g} in raw units" if scale else ""
        raise ValueError(
            "the GSAE's training lambda is unknown (a pretrained SAE whose cfg.json has no l1_coefficient?): set "
            "retrieval.tracin_l1_coefficient to the lambda of the loss TracIn should use, in "
            f"units of the raw activations (e.g. --set retrieval.tracin_l1_coefficient=5){hint}"
        )
    score = TracInConfig(lam, rcfg.tracin_l1_weighting, tuple(rcfg.tracin_params), rcfg.tracin_batch_tokens)
    return TracInSettings(score, source, threshold, rcfg.tracin_max_doc_tokens, rcfg.tracin_stream)


def _drop_outliers(acts: torch.Tensor, doc_index: torch.Tensor, threshold: float | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    if threshold is None:
        return acts, doc_index, 0
    keep = acts.norm(dim=-1) <= threshold
    return acts[keep], doc_index[keep], int((~keep).sum())


# ------------------------------------------------------------------ scoring
def score_candidates(
    sae: Any,
    store: ActivationStore,
    docs: Sequence[Document],
    seed_grad: dict[str, torch.Tensor],
    loss: TracInSettings,
    desc: str,
    sums_key: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """TracIn score of each document (NaN where every scored token was an outlier).
    ``sums_key`` (streamed scoring): the per-document sums torchrun ranks left in the cache
    under that key (``streamed_sums_key``) are used instead of streaming again."""
    if loss.stream:
        return _score_streamed(sae, store, docs, seed_grad, loss, desc, sums_key)
    acts_set = store.load([d.text for d in docs], desc=desc, max_doc_tokens=loss.max_doc_tokens)
    acts, doc_index, n_outliers = _drop_outliers(acts_set.acts, acts_set.doc_index, loss.norm_threshold)
    present = torch.unique(doc_index)
    remap = torch.full((len(docs),), -1, dtype=torch.long)
    remap[present] = torch.arange(len(present))
    t = time.perf_counter()
    dense_scores = tracin_scores(sae, None, acts, remap[doc_index], len(present), loss.score, seed_grad=seed_grad)
    seconds = time.perf_counter() - t
    scores = np.full(len(docs), np.nan)
    scores[present.numpy()] = dense_scores.cpu().numpy()
    info = {"n_docs": len(docs), "scored_tokens": int(acts.shape[0]), "outlier_tokens_dropped": n_outliers,
            "unscorable_docs": int(len(docs) - len(present)), "scoring_s": round(seconds, 2),
            "tokens_per_s": round(acts.shape[0] / max(seconds, 1e-9))}
    return scores, info


@dataclass
class StreamedSums:
    """Per-document TracIn token sums and token counts of a streamed scoring (float64)."""

    sums: torch.Tensor
    counts: torch.Tensor
    n_tokens: int = 0
    n_outliers: int = 0
    seconds: float = 0.0


def streamed_sums_key(store: ActivationStore, docs: Sequence[Document], seeds: Sequence[Document], loss: TracInSettings,
                      gsae_folder: str) -> str:
    """Everything a streamed scoring's sums depend on (the cache name of ``StreamedSums``)."""
    return stable_hash({"store": store.key, "docs": [d.doc_id for d in docs], "seeds": [d.doc_id for d in seeds],
                        "loss": loss.to_dict(), "gsae": gsae_folder, "chunk_contexts": store.cfg.shard_contexts})


def sums_path(key: str) -> Any:
    return cache_dir("tracin_sums") / f"{key}.pt"


def save_sums(key: str, sums: StreamedSums) -> None:
    with atomic_path(sums_path(key)) as tmp:
        torch.save(dataclasses.asdict(sums), tmp)


def load_sums(key: str, n_docs: int) -> StreamedSums | None:
    path = sums_path(key)
    if not path.exists():
        return None
    try:
        out = StreamedSums(**torch.load(path, weights_only=True))
    except Exception as err:  # recomputable: stream again
        log.warning("cannot read %s (%s); scoring again", path, err)
        return None
    return out if out.sums.shape == (n_docs,) and out.counts.shape == (n_docs,) else None


def streamed_token_sums(sae: Any, store: ActivationStore, docs: Sequence[Document], seed_grad: dict[str, torch.Tensor],
                        loss: TracInSettings, desc: str, only: Any = None) -> StreamedSums:
    """The token sums of ``_score_streamed``, over the stream's chunks ``only`` keeps (all by
    default). Each document lies in one chunk, so sums over disjoint chunk sets add up exactly."""
    out = StreamedSums(torch.zeros(len(docs), dtype=torch.float64), torch.zeros(len(docs), dtype=torch.float64))
    for chunk in store.stream([d.text for d in docs], max_doc_tokens=loss.max_doc_tokens, desc=desc, only=only):
        acts, doc_index, dropped = _drop_outliers(chunk.acts, chunk.doc_index, loss.norm_threshold)
        out.n_outliers += dropped
        if acts.shape[0] == 0:
            continue
        t = time.perf_counter()
        s, c = tracin_token_sums(sae, None, acts, doc_index, len(docs), loss.score, seed_grad=seed_grad, allow_empty_docs=True)
        out.seconds += time.perf_counter() - t
        out.sums += s.cpu()
        out.counts += c.cpu()
        out.n_tokens += int(acts.shape[0])
    return out


def _score_streamed(sae: Any, store: ActivationStore, docs: Sequence[Document], seed_grad: dict[str, torch.Tensor],
                    loss: TracInSettings, desc: str, sums_key: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``score_candidates`` with the activations computed chunk by chunk and dropped after
    scoring: memory O(chunk) + O(documents). Chunks hold whole documents, so each document's
    score (its token sum over its token count) is the same as scoring all at once, up to the
    float rounding of a different batching."""
    found = load_sums(sums_key, len(docs)) if sums_key else None
    got = found or streamed_token_sums(sae, store, docs, seed_grad, loss, desc)
    sums, counts, n_tokens, n_outliers, seconds = got.sums, got.counts, got.n_tokens, got.n_outliers, got.seconds
    present = counts > 0
    scores = np.full(len(docs), np.nan)
    scores[present.numpy()] = (sums[present] / counts[present]).numpy()
    info = {"n_docs": len(docs), "scored_tokens": n_tokens, "outlier_tokens_dropped": n_outliers,
            "unscorable_docs": int((~present).sum()), "scoring_s": round(seconds, 2),
            "tokens_per_s": round(n_tokens / max(seconds, 1e-9)), "streamed": True}
    return scores, info


def scorable_ids(domain: str, retriever: str, candidates: Sequence[str], score_of: dict[str, float]) -> list[str]:
    """The candidates with a TracIn score; a document whose every scored token is an outlier
    has none and drops out of the ranking, so most dropping out fails the stage."""
    ids = [i for i in candidates if np.isfinite(score_of[i])]
    check_item_failures(f"{domain} {retriever} TracIn candidates", len(candidates) - len(ids), len(candidates),
                        "no scorable token: every scored token is above the GSAE outlier threshold",
                        "Raise gsae.outlier_norm_factor or retrieval.tracin_max_doc_tokens, or set "
                        "retrieval.tracin_drop_outliers=false.")
    return ids


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def seed_documents(cfg: ProfileConfig, corpora: Corpora, domain: str) -> Sequence[Document]:
    seeds = corpora[cfg.domain(domain).split("seed")]
    if not seeds:
        raise ValueError(f"the {domain} seed split is empty: TracIn needs a seed set")
    return seeds


def domain_seed_gradient(sae: Any, store: ActivationStore, seeds: Sequence[Document], loss: TracInSettings,
                         domain: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The seed gradient of ``domain`` and what the results say about it."""
    seed_set = store.load([d.text for d in seeds], desc=f"caching {domain} seed activations")
    seed_acts, _, seed_outliers = _drop_outliers(seed_set.acts, seed_set.doc_index, loss.norm_threshold)
    if seed_acts.shape[0] == 0:
        raise ValueError(f"every {domain} seed token is above the outlier threshold; nothing to take a gradient of")
    t = time.perf_counter()
    grad = seed_gradient(sae, seed_acts, loss.score)
    return grad, {"docs": len(seeds), "tokens": int(seed_acts.shape[0]), "outlier_tokens_dropped": seed_outliers,
                  "gradient_s": round(time.perf_counter() - t, 2),
                  "gradient_norms": {k: float(v.norm()) for k, v in grad.items()}}


def candidate_documents(corpora: Corpora, first_stage: RetrievalDomain) -> tuple[dict[str, list[str]], dict[str, Document], list[Document]]:
    """Each retriever's candidate ids, the candidates by id, and the union's documents (in order)."""
    candidates = {name: first_stage.prefilter[name].doc_ids for name in RETRIEVERS}
    union = list(dict.fromkeys(i for name in RETRIEVERS for i in candidates[name]))
    by_id = find_documents([corpora["general_pool"]], union)   # only the candidates' rows are read
    missing = [i for i in union if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} candidate ids from 01_retrieval.json are not in the pool (e.g. {missing[:3]}); rerun notebook 01")
    return candidates, by_id, [by_id[i] for i in union]


def rerank_domain(
    cfg: ProfileConfig,
    corpora: Corpora,
    domain: str,
    first_stage: RetrievalDomain,
    counts: dict[str, int],
    sae: Any,
    store: ActivationStore,
    loss: TracInSettings,
    gsae_folder: str = "",
) -> dict[str, Any]:
    """BM25-TracIn and Dense-TracIn selections and their diagnostics for one subdomain."""
    rcfg = cfg.retrieval
    budget = cfg.domain(domain).token_budget
    if first_stage.budget != budget:
        raise ValueError(f"01_retrieval.json used a {domain} budget of {first_stage.budget}, this run {budget}; rerun notebook 01")
    positives = {d.doc_id for d in corpora.known_positives(domain)}

    seeds = seed_documents(cfg, corpora, domain)
    grad, seed_info = domain_seed_gradient(sae, store, seeds, loss, domain)

    # Score the union of both retrievers' candidates once.
    candidates, by_id, union_docs = candidate_documents(corpora, first_stage)
    union = [d.doc_id for d in union_docs]
    union_scores, scoring = score_candidates(sae, store, union_docs, grad, loss,
                                             desc=f"caching {domain} TracIn candidates",
                                             sums_key=streamed_sums_key(store, union_docs, seeds, loss, gsae_folder))
    score_of = dict(zip(union, union_scores))

    selections: dict[str, Selection] = {}
    diagnostics: dict[str, Any] = {"candidates": {}, "score_histograms": {}, "ranking_quality": {}}
    for name in RETRIEVERS:
        ids = scorable_ids(domain, name, candidates[name], score_of)
        docs = [by_id[i] for i in ids]
        tracin = np.array([score_of[i] for i in ids])
        first = dict(zip(candidates[name], first_stage.prefilter[name].scores))
        first_scores = np.array([first[i] for i in ids])
        is_pos = np.array([i in positives for i in ids])
        order, ranked = rank_scores(tracin)
        strategy = f"{name}_tracin"
        selections[strategy] = select_to_budget(
            docs, order, ranked, counts, budget, strategy=strategy, domain=domain,
            allow_short=rcfg.allow_short_budget, meta={"candidates_from": name, "prefilter_tokens": first_stage.prefilter[name].tokens},
        )
        first_order, _ = rank_scores(first_scores)
        diagnostics["candidates"][name] = {
            "doc_ids": ids, "first_stage_scores": first_scores.tolist(), "tracin_scores": tracin.tolist(),
            "is_positive": is_pos.tolist(), "n_positives": int(is_pos.sum()),
            "spearman_first_stage_vs_tracin": _spearman(first_scores, tracin),
        }
        diagnostics["score_histograms"][name] = score_histograms(tracin, is_pos, HIST_BINS)
        diagnostics["ranking_quality"][name] = {
            "auroc_tracin": auroc(tracin, is_pos), "auroc_first_stage": auroc(first_scores, is_pos),
            **{f"precision_at_{k}_tracin": precision_at_k([ids[i] for i in order], positives, k) for k in (10, 50) if k <= len(ids)},
            **{f"precision_at_{k}_first_stage": precision_at_k([ids[i] for i in first_order], positives, k) for k in (10, 50) if k <= len(ids)},
        }

    # Quality and overlap of all six strategies (four from stage 01, two from here).
    quality = dict(first_stage.quality)
    quality.update({n: {**precision_recall(s.doc_ids, positives), **s.summary()} for n, s in selections.items()})
    all_ids = {n: s.doc_ids for n, s in first_stage.selections.items()}
    all_ids.update({n: s.doc_ids for n, s in selections.items()})
    return {
        "budget": budget,
        "n_known_positives": len(positives),
        "seed": seed_info,
        "scoring": scoring,
        "selections": {n: s.to_dict() for n, s in selections.items()},
        "quality": quality,
        "overlap_jaccard": overlap_matrix(all_ids),
        **diagnostics,
    }


def run_tracin(cfg: ProfileConfig) -> TracinResults:
    """The whole of stage 02; returns and saves its results."""
    from ssae_utils import dist

    dist.apply_threads()
    dist.launch_if_requested("tracin", cfg)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    first = load_stage01(cfg)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    sae, setup = load_saved_gsae(cfg)
    loss = tracin_settings(cfg.retrieval, setup.gsae.training)
    store = ActivationStore(model, cfg.activations)
    pool = corpora["general_pool"]
    counts = dict(zip(pool.doc_ids if hasattr(pool, "doc_ids") else (d.doc_id for d in pool),
                      document_token_counts(pool, model.tokenizer, model.fingerprint)))
    timings["load_s"] = time.perf_counter() - t

    domains = {}
    for domain, first_stage in first.domains.items():
        t = time.perf_counter()
        domains[domain] = rerank_domain(cfg, corpora, domain, first_stage, counts, sae, store, loss, setup.gsae.folder)
        timings[f"rerank_{domain}_s"] = time.perf_counter() - t

    results = TracinResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "inputs_key": first.inputs_key,
        "retrieval_config": cfg.retrieval.to_dict(),
        "gsae_folder": setup.gsae.folder,
        "tracin_loss": loss.to_dict(),
        "domains": domains,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    })
    write_results(cfg, results)
    return results
