"""Stage 05: tail concepts. Logit-lens coverage vs token frequency, activation counts, decoder geometry.

Paper §3.3-3.4, Figures 2a, 2b, 3a and 7. Models are compared at matched sparsity
(``ssae_utils.analysis.matched``: per model the lambda whose validation L0 is closest to
``tail.target_l0``; the L0s reached are recorded). For each model:

* logit lens (``analysis.logit_lens``): the top-k tokens of every decoder direction through the
  final norm's scale and the unembedding; a token type is covered when it is in some feature's
  top-k. Per log-spaced frequency bucket of the in-distribution test split, the share of its
  types that are covered (Fig. 2a), and the cumulative coverage from the rarest types up,
  normalized per model (Fig. 2b);
* activation counts (``analysis.feature_counts``) on a seeded sample of test documents:
  per-feature counts sorted by rank (Fig. 3a), dead features, and the histogram of per-feature
  count differences between each specialized SSAE and the general-data SSAE (Fig. 7). The
  counts of a model sum to its L0 times the number of tokens, so the *mean* difference is
  exactly n_tokens x (L0 - L0_baseline) / d_sae: it measures the L0 match, and only the
  shape (median, shares above and below 0) says more;
* pairwise decoder cosines (``analysis.decoder_geometry``);
* the tail tokens the specialized SSAEs cover and the general-data SSAE does not.

Results: ``results/<profile>/05_tail_tokens.json``; ``models`` holds the picked models
(``MatchedModel.to_dict()``) for notebook 06.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from ssae_utils.activations import ActivationStore
from ssae_utils.analysis.coverage import bucket_shares, covered_mask, cumulative_coverage, tail_token_table
from ssae_utils.analysis.decoder_geometry import cosine_histogram
from ssae_utils.analysis.feature_counts import activation_counts, count_summary, difference_histogram
from ssae_utils.analysis.frequency import log_buckets, split_token_counts
from ssae_utils.analysis.logit_lens import cached_top_tokens, final_norm_scale
from ssae_utils.analysis.matched import GENERAL, MatchedModel, load_matched_sae, pick_matched_models
from ssae_utils.config import ProfileConfig
from ssae_utils.data.corpora import build_corpora
from ssae_utils.data.splitting import sample_whole_documents
from ssae_utils.io import read_json
from ssae_utils.model.registry import load_model
from ssae_utils.paths import figures_dir
from ssae_utils.pipeline.dashboards import stage05_dashboards
from ssae_utils.results import FinetuneResults, SetupResults, TailTokensResults, read_stage, write_results
from ssae_utils.sae.outliers import NormThreshold
from ssae_utils.token_counts import token_counts

log = logging.getLogger(__name__)

RESULTS_FILE = TailTokensResults.FILE
BASELINE = GENERAL.label  # the paper's "OWT baseline": the SSAE finetuned on general data


def load_upstream(cfg: ProfileConfig) -> tuple[SetupResults, FinetuneResults]:
    """00_setup.json and 03_finetune.json, with an error naming the notebook to run."""
    return read_stage(cfg, SetupResults), read_stage(cfg, FinetuneResults)


def specialized_labels(models: list[MatchedModel]) -> list[str]:
    """The SSAEs compared with the general-data baseline (everything but the GSAE and the baseline)."""
    return [m.label for m in models if not m.is_gsae and m.label != BASELINE]


def run_tail_tokens(cfg: ProfileConfig) -> TailTokensResults:
    """The whole of stage 05; returns and saves its results."""
    tc = cfg.tail
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    stage00, stage03 = load_upstream(cfg)
    domain = cfg.domain(tc.domain)
    models = pick_matched_models(stage00, stage03, domain.name, tc.target_l0, seed=tc.ssae_seed)
    labels = [m.label for m in models]
    if BASELINE not in labels:
        raise ValueError(f"the compared models must include the general-data baseline {BASELINE!r}")
    saes = {m.label: load_matched_sae(m) for m in models}
    lm = load_model(cfg.model)
    for label, sae in saes.items():
        if int(sae.cfg.d_in) != lm.d_model:
            raise ValueError(f"{label}: SAE d_in={sae.cfg.d_in} but {lm.name} has d_model={lm.d_model}; "
                             "rerun notebooks 00 and 03 for this profile")
    store = ActivationStore(lm, cfg.activations)
    test_docs = build_corpora(cfg.data, cfg.domains)[domain.split("test")]
    timings["load_s"] = round(time.perf_counter() - t0, 1)

    # Token frequencies of the whole test split, counted as the SAEs see the tokens.
    t = time.perf_counter()
    texts = [d.text for d in test_docs]
    freq = split_token_counts(texts, lm.tokenizer, lm.vocab_size, lm.bos_token_id, store.context_length, store.min_tokens)
    buckets = log_buckets(freq, tc.bucket_base)
    timings["frequencies_s"] = round(time.perf_counter() - t, 1)

    # Logit lens (cached per decoder: identical SSAEs are computed once).
    t = time.perf_counter()
    tops, from_cache = {}, {}
    for label, sae in saes.items():
        tops[label], from_cache[label] = cached_top_tokens(sae.W_dec, lm, tc.top_k, tc.feature_chunk, tc.vocab_chunk,
                                                           desc=f"logit lens: {label}")
    timings["logit_lens_s"] = round(time.perf_counter() - t, 1)

    # Activation counts on a seeded sample of whole test documents.
    t = time.perf_counter()
    doc_tokens = token_counts(texts, lm.tokenizer, lm.fingerprint)
    sample, sampled_tokens = sample_whole_documents(test_docs, lambda i: doc_tokens[i], tc.count_tokens, tc.sample_seed)
    act_set = store.load([d.text for d in sample], desc=f"caching {domain.name} test activations")
    threshold = NormThreshold.from_training_info(stage00.gsae.training, cfg.gsae.outlier_norm_factor)
    outlier = torch.zeros(len(act_set), dtype=torch.bool) if threshold is None else threshold.is_outlier(act_set.acts)
    acts = act_set.acts[~outlier]
    counts = {label: activation_counts(sae, acts) for label, sae in saes.items()}
    timings["activation_counts_s"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    vocab = lm.vocab_size
    covered = {label: covered_mask(tops[label].indices, vocab) for label in labels}
    present = freq > 0
    per_model: dict[str, Any] = {}
    for m in models:
        alive = counts[m.label] > 0
        per_model[m.label] = {
            "val_l0": m.val_l0,
            "covered_types_vocab": int(covered[m.label].sum()),
            "covered_types_in_data": int((covered[m.label] & present).sum()),
            # the same, counting only features that fire on the test sample
            "covered_types_in_data_alive_features": int((covered_mask(tops[m.label].indices, vocab, alive) & present).sum()),
            "logit_lens_from_cache": from_cache[m.label],
            "bucket_shares": bucket_shares(covered[m.label], freq, buckets),
            "cumulative": cumulative_coverage(covered[m.label], freq),
            "activation_counts": counts[m.label].tolist(),  # per feature, in feature order
            "activation_summary": count_summary(counts[m.label], acts.shape[0]),
            "decoder_cosines": cosine_histogram(saes[m.label].W_dec.detach(), tc.cosine_bins, tc.cosine_chunk),
        }
    specialized = specialized_labels(models)
    differences = {label: difference_histogram(counts[label], counts[BASELINE], tc.count_diff_bins) for label in specialized}
    tail = tail_token_table(covered, {k: v.indices for k, v in tops.items()}, freq, BASELINE, specialized,
                            tc.tail_max_count, lambda i: lm.tokenizer.decode([i]))
    timings["analysis_s"] = round(time.perf_counter() - t, 1)
    timings["total_s"] = round(time.perf_counter() - t0, 1)

    results = TailTokensResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "config": tc.to_dict(),
        "domain": domain.name,
        "target_l0": tc.target_l0,
        "models": [m.to_dict() for m in models],
        "baseline": BASELINE,
        "specialized": specialized,
        "logit_lens": {"top_k": tc.top_k, "vocab_size": vocab, "final_norm": "scale" if final_norm_scale(lm) is not None else "none",
                       "model": lm.name, "hook": lm.hook_name},
        "frequency": {"split": domain.split("test"), "documents": len(test_docs), "tokens": int(freq.sum()),
                      "types": int(present.sum()), "bucket_base": tc.bucket_base,
                      "buckets": [{"lo": b.lo, "hi": b.hi, "label": b.label, "n_types": len(b.token_ids)} for b in buckets]},
        "activation_sample": {"documents": len(sample), "lm_tokens": sampled_tokens, "tokens": int(acts.shape[0]),
                              "outlier_tokens_dropped": int(outlier.sum()), "seed": tc.sample_seed},
        "per_model": per_model,
        "count_differences": {"baseline": BASELINE, "per_model": differences},
        "tail_tokens": tail,
        "timings": timings,
    })
    path = write_results(cfg, results)
    # pages of the features the report names (Dense-only tail features, a sample per model)
    t = time.perf_counter()
    keep = ~outlier
    index = stage05_dashboards(read_json(path), saes, lm, acts, act_set.token_ids[keep], act_set.doc_index[keep],
                               figures_dir(cfg.name) / "dashboards")
    log.info("feature dashboards: %s (%.1f s)", index, time.perf_counter() - t)
    return results


def coverage_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: L0s, covered types, dead features, decoder-cosine summaries."""
    rows = []
    for m in results["models"]:
        p = results["per_model"][m["label"]]
        a, c = p["activation_summary"], p["decoder_cosines"]
        rows.append({"model": m["label"], "lambda": m["l1_coefficient"], "val_l0": m["val_l0"], "test_sample_l0": a["l0"],
                     "covered_types_in_data": p["covered_types_in_data"],
                     "covered_types_alive_only": p["covered_types_in_data_alive_features"],
                     "dead_features": a["dead_features"], "mean_decoder_cos": c["mean"], "mean_max_decoder_cos": c["mean_max_cosine"]})
    return rows


def bucket_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Fig. 2a as a table: one row per frequency bucket, the covered share per model."""
    rows = []
    for i, b in enumerate(results["frequency"]["buckets"]):
        row = {"count": b["label"], "types": b["n_types"]}
        for m in results["models"]:
            row[m["label"]] = results["per_model"][m["label"]]["bucket_shares"][i]["share"]
        rows.append(row)
    return rows
