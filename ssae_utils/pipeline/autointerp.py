"""Stage 06: automated interpretability of the compared SAEs (paper §3.5, Fig. 3b, Appendix E).

For each compared model (the GSAE and SSAEs at one validation L0, ``ssae_utils.analysis.matched``)
the features' activations are recorded per token over the in-distribution test split, N
features are sampled among those with enough firing windows, and each is explained from its
top-10 windows and scored by F1 of predictions on 5 quantile + 5 non-firing windows
(``ssae_utils.autointerp``).

Mode: Claude when ANTHROPIC_API_KEY is set (answers cached under the cache root, calls
planned and checked against the budget before the first one), otherwise the offline
explainer, in which case every output says so. Offline runs never build the Claude client.

Writes ``results/<profile>/06_autointerp.json`` (per-feature results, per-model F1 mean and
bootstrap CI, the Appendix E table, calls and costs) and ``06_explanations.csv``.

    python run_all.py --only 06                               # embedded, offline without a key
    ANTHROPIC_API_KEY=... python run_all.py --only 06 --force # Claude (cached: reruns are free)
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ssae_utils.analysis.matched import (TERM_ARMS_ALIAS, compared_models, load_matched_sae, other_term_arms,
                                         pick_matched_models, resolve_specs)
from ssae_utils.autointerp.budget import BudgetMeter, check_budget, estimate_cost, price_of
from ssae_utils.autointerp.cache import ResponseCache
from ssae_utils.autointerp.client import ClaudeClient, MissingAPIKey, api_key_available
from ssae_utils.autointerp.config import DEFAULT_TARGET_L0, AutointerpConfig
from ssae_utils.autointerp.examples import ExampleBuilder, FeatureExamples, scorable, select_features, window_index, window_maxima
from ssae_utils.autointerp.explainers import ClaudeInterpreter, ClaudePredictor
from ssae_utils.autointerp.llm import CachedLLM
from ssae_utils.autointerp.offline import OFFLINE_LABEL, OfflineInterpreter, OfflinePredictor
from ssae_utils.autointerp.runner import FeatureResult, planned_requests, run_features
from ssae_utils.autointerp.scoring import bootstrap_mean_ci
from ssae_utils.config import ProfileConfig
from ssae_utils.io import atomic_path
from ssae_utils.paths import results_dir
from ssae_utils.pipeline.failures import MAX_FAILED_SHARE, StageItemsFailed, check_item_failures
from ssae_utils.results import EXPLANATIONS, AutointerpResults, FinetuneResults, SetupResults, read_stage, write_results

log = logging.getLogger(__name__)

RESULTS_FILE = AutointerpResults.FILE
EXPLANATIONS_FILE = EXPLANATIONS.FILE


def resolve_mode(a: AutointerpConfig) -> str:
    if a.mode == "offline":
        return "offline"
    if api_key_available():
        return "claude"
    if a.mode == "claude":
        raise MissingAPIKey("autointerp.mode=claude but ANTHROPIC_API_KEY is not set")
    return "offline"


def resolve_target_l0(cfg: ProfileConfig) -> tuple[float, str]:
    """The validation L0 the models are matched at: our own knob, else the tail analysis's, else 100."""
    if cfg.autointerp.target_l0 is not None:
        return float(cfg.autointerp.target_l0), "autointerp.target_l0"
    tail_target = getattr(getattr(cfg, "tail", None), "target_l0", None)
    if tail_target is not None:
        return float(tail_target), "tail.target_l0"
    return DEFAULT_TARGET_L0, "default (paper: L0 ~ 100)"


@dataclass
class Collected:
    """Examples per model and what they were drawn from (input to ``interpret``)."""

    features: dict[str, list[FeatureExamples]]
    models: list[dict[str, Any]]
    data: dict[str, Any]


def collect_examples(cfg: ProfileConfig) -> Collected:
    """Per-token activations of every compared model over the test split, cut into windows,
    and each sampled feature's explanation and scoring windows."""
    from ssae_utils.activations import ActivationStore
    from ssae_utils.data.corpora import build_corpora
    from ssae_utils.model.registry import load_model
    from ssae_utils.sae.outliers import NormThreshold

    a = cfg.autointerp
    stage00, stage03 = read_stage(cfg, SetupResults), read_stage(cfg, FinetuneResults)
    target, target_source = resolve_target_l0(cfg)
    # the tail analysis's seed too, so that notebooks 05 and 06 look at the same SSAEs
    seed = getattr(getattr(cfg, "tail", None), "ssae_seed", None)
    domain = cfg.domain(a.domain)
    available = compared_models(stage03, domain.name)
    try:
        specs = resolve_specs(a.models, available)
    except ValueError as err:
        raise ValueError(f"autointerp.models: {err}") from None
    picked = pick_matched_models(stage00, stage03, domain.name, target, specs, seed=seed)
    # the arms "TERM arms" brought in (not named on their own) get arm_features features each
    arms = {spec.label for spec in other_term_arms(available)} - set(a.models) if TERM_ARMS_ALIAS in a.models else set()
    split = domain.split(a.split)
    docs = build_corpora(cfg.data, cfg.domains)[split]
    docs = docs[: a.max_docs] if a.max_docs else docs
    model = load_model(cfg.model)
    store = ActivationStore(model, cfg.activations)
    act_set = store.load([d.text for d in docs], desc=f"caching {split} activations")
    threshold = NormThreshold.from_training_info(stage00.gsae.training, cfg.gsae.outlier_norm_factor)
    valid = None if threshold is None else ~threshold.is_outlier(act_set.acts)
    index = window_index(act_set.positions, act_set.doc_index, act_set.token_ids, a.window_tokens)

    full = index.full
    features: dict[str, list[FeatureExamples]] = {}
    models = []
    for m in picked:
        sae = load_matched_sae(m)
        with torch.no_grad():
            maxima = window_maxima(sae.encode, act_set.acts, index, valid)
        counts = (maxima[full] > 0).sum(0)  # examples come from full windows only
        eligible = scorable(counts, int(full.sum()), a.n_explain, a.n_quantile, a.n_random)
        wanted = a.arm_features if m.label in arms else a.n_features
        chosen = select_features(eligible, wanted, min(a.table_features, wanted), a.seed)
        builder = ExampleBuilder(m.label, sae.encode, act_set.acts, index, model.tokenizer.decode, valid)
        features[m.label] = builder.build(chosen, maxima, a.n_explain, a.n_quantile, a.n_random, a.seed)
        models.append({**m.to_dict(), "target_l0_source": target_source, "d_sae": int(maxima.shape[1]),
                       "active_features": int((maxima > 0).any(0).sum()), "scorable_features": int(eligible.sum()),
                       "evaluated_features": len(chosen), "requested_features": wanted, "other_term_arm": m.label in arms})
        if len(chosen) < wanted:
            log.warning("%s: only %d scorable features (asked for %d)", m.label, len(chosen), wanted)
    data = {"split": split, "documents": len(docs), "tokens": len(act_set), "windows": index.n_windows,
            "full_windows": int(full.sum()), "window_tokens": a.window_tokens, "outlier_tokens_ignored": 0 if valid is None else int((~valid).sum())}
    return Collected(features, models, data)


def interpret(cfg: ProfileConfig, collected: Collected, http_client: Any = None,
              sleep: Callable[[float], None] = time.sleep) -> AutointerpResults:
    """Explain, predict and score every collected feature; write the results and the CSV."""
    a = cfg.autointerp
    mode = resolve_mode(a)
    t0 = time.perf_counter()
    every = [f for label in collected.features for f in collected.features[label]]
    price = price_of(a.claude_model, a.price_input_per_mtok, a.price_output_per_mtok)
    cold = estimate_cost(planned_requests(every, a, cache=None), price)
    calls: dict[str, Any] = {"mode": mode}
    if mode == "claude":
        cache = ResponseCache()
        plan = estimate_cost(planned_requests(every, a, cache), price)
        check_budget(plan, a.budget_usd, a.max_calls)  # before any call
        meter = BudgetMeter(a.budget_usd, a.max_calls, price)
        llm = CachedLLM(a.claude_model, a.effort, cache, meter, lambda: ClaudeClient(
            a.max_retries, a.backoff_s, a.backoff_max_s, a.timeout_s, http_client=http_client, sleep=sleep))
        interpreter, predictor = ClaudeInterpreter(llm, a.interpreter_max_tokens, a.mark_fraction), ClaudePredictor(llm, a.predictor_max_tokens)
        log.info("Claude plan: %d uncached calls, at most $%.2f", plan.calls, plan.usd)
        if plan.calls:
            llm.client.probe(a.claude_model)  # seconds, not minutes of retries, when Claude cannot be reached
    else:
        interpreter, predictor = OfflineInterpreter(a.offline_keywords, a.mark_fraction), OfflinePredictor()
    # one pool and one progress bar (rate and ETA) over the features of every model
    done = run_features(every, interpreter, predictor, a.mark_fraction, a.concurrency if mode == "claude" else 1,
                        desc=f"autointerp ({'Claude' if mode == 'claude' else OFFLINE_LABEL})")
    results: dict[str, list[FeatureResult]] = {label: [] for label in collected.features}
    for result in done:
        results[result.model].append(result)
    if mode == "claude":
        calls.update({"plan": plan.to_dict(), "calls_made": llm.calls, "cache_hits": llm.cache_hits,
                      "transient_retries": llm.retries, "corrupt_cache_entries": cache.corrupt, "spend": meter.to_dict()})
    else:
        calls.update({"calls_made": 0, "cache_hits": 0})
    every_result = [r for rs in results.values() for r in rs]
    calls["malformed_retries"] = sum(1 for r in every_result for n in r.attempts.values() if n > 1)
    calls["failures"] = sum(1 for r in every_result if r.failure is not None)
    check_failures(every_result)  # before anything is written: good earlier results are never replaced

    summary = {}
    for label, rs in results.items():
        ci = bootstrap_mean_ci([r.f1 for r in rs if r.f1 is not None], a.bootstrap_samples, seed=a.seed)
        summary[label] = {**ci.to_dict(), "evaluated": len(rs), "failed": sum(r.failure is not None for r in rs)}
    table = {label: [{"feature": r.feature, "explanation": r.explanation, "f1": r.f1, "failure": r.failure}
                     for r in sorted(rs[: a.table_features], key=lambda r: r.feature)] for label, rs in results.items()}
    out = AutointerpResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "autointerp": a.to_dict(),
        "mode": mode,
        "explainer": interpreter.label,
        "title_label": OFFLINE_LABEL if mode == "offline" else f"Claude {a.claude_model}",
        "data": collected.data,
        "models": collected.models,
        "summary": summary,
        "table": table,
        "calls": calls,
        "claude_estimate": {**cold.to_dict(), "note": "every feature of this run, empty cache, Claude " + a.claude_model},
        "features": {label: [r.to_dict() for r in rs] for label, rs in results.items()},
        "timings": {"interpret_s": round(time.perf_counter() - t0, 1)},
    })
    write_results(cfg, out)
    write_explanations_csv(out)
    return out


class AutointerpFailed(StageItemsFailed):
    """Most features got no F1: the stage fails rather than report an empty result."""


def check_failures(done: list[FeatureResult], max_share: float = MAX_FAILED_SHARE) -> None:
    """Raise when more than ``max_share`` of the features failed, naming the commonest cause."""
    failed = [r.failure for r in done if r.failure is not None]
    if failed:
        cause, count = Counter(failed).most_common(1)[0]
        check_item_failures("features", len(failed), len(done), f"most often, {count}x: {cause}",
                            "See the failures in the log; --set autointerp.mode=offline runs without Claude.",
                            max_share, AutointerpFailed)


def write_explanations_csv(results: AutointerpResults) -> None:
    columns = ["mode", "explainer", "model", "feature", "in_table", "explanation", "f1", "precision", "recall", "failure",
               "firing_windows"]
    table_ids = {(label, row["feature"]) for label, rows in results.table.items() for row in rows}
    with atomic_path(results_dir(results.profile) / EXPLANATIONS_FILE) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for label, rows in results.features.items():
                for r in rows:
                    s = r["score"] or {}
                    writer.writerow({"mode": results.mode, "explainer": results.explainer, "model": label,
                                     "feature": r["feature"], "in_table": (label, r["feature"]) in table_ids,
                                     "explanation": r["explanation"], "f1": r["f1"], "precision": s.get("precision"),
                                     "recall": s.get("recall"), "failure": r["failure"], "firing_windows": r["firing_windows"]})


def run_autointerp(cfg: ProfileConfig, http_client: Any = None) -> AutointerpResults:
    """The whole of stage 06; returns and saves its results."""
    resolve_mode(cfg.autointerp)  # a missing key for mode=claude fails before the slow part
    t0 = time.perf_counter()
    collected = collect_examples(cfg)
    collect_s = round(time.perf_counter() - t0, 1)
    results = interpret(cfg, collected, http_client=http_client)
    results.timings["collect_s"] = collect_s
    write_results(cfg, results)
    return results


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: matched L0, features, F1 mean with its bootstrap CI."""
    by_label = {m["label"]: m for m in results["models"]}
    rows = []
    for label, s in results["summary"].items():
        m = by_label.get(label, {})
        rows.append({"model": label, "val_l0": m.get("val_l0"), "lambda": m.get("l1_coefficient"),
                     "scorable_features": m.get("scorable_features"), "evaluated": s["evaluated"], "failed": s["failed"],
                     "f1_mean": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "f1_median": s["median"]})
    return rows


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The Appendix E table: first active features of each model, explanation and F1."""
    return [{"model": label, **row} for label, rows in results["table"].items() for row in rows]
