"""The Pareto claims (C1-C5) under the paired hierarchical estimator.

The quantity compared is the one the scorecard has always compared: a curve's mean height over
its figure's common L0 window (``04_pareto.json``: ``auc.common``, ``auc.auc[curve].mean_y``),
the height being the patched perplexity relative to the GSAE's on the same documents. At fixed
L0 (the curve's mean validation L0 per lambda) that mean height is linear in the per-lambda
heights, ``mean_y = sum_l w_l ybar_l`` with the trapezoid weights ``w`` of
``sae.pareto.curve_auc``; ``ybar_l`` is the mean over seeds of ``exp(CE_seed,l - CE_GSAE)``.
So each strategy is an arm whose per-seed value is ``g_j = sum_l w_l exp(CE_jl - CE_GSAE)``
(``mean_j g_j = mean_y``), with per-document influences by the delta method, built from the
per-document CE sums stage 03 keeps (``03_finetune.json``: ``eval_documents`` and each row's
``ce_sums``). ``ssae_utils.stats.hierarchical`` gives the paired estimate; an OOD-minus-test
gap (C3, C5) pairs each strategy's seeds across the two splits.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ssae_utils.sae.pareto import curve_auc
from ssae_utils.stats.hierarchical import Arm, ce_arm, contrast, relative_ppl, weighted_sum
from ssae_utils.stats.verdict import Precondition, SubTest

EVIDENCE = "03_finetune.json keeps per-document CE (eval_documents, ce_sums)"


class Untestable(Exception):
    """A precondition failed; the message states it."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(f"{name}: {detail}" if detail else name)
        self.precondition = Precondition(name, False, detail)


def window_weights(l0: list[float], window: tuple[float, float]) -> np.ndarray:
    """``w`` with ``curve_auc(l0, y, window).mean_y == w @ y`` for every ``y`` (linearity at fixed L0)."""
    x = np.asarray(l0, dtype=float)
    out = np.array([curve_auc(x, np.eye(x.size)[k], window).mean_y for k in range(x.size)])
    if np.any(~np.isfinite(out)):
        raise Untestable("the curve covers the figure's common L0 window", f"L0 {x.min():.1f}-{x.max():.1f}")
    return out


def curve_arm(finetune: Mapping[str, Any], figure: Mapping[str, Any], curve: str) -> Arm:
    """The arm of ``curve`` (an ERM strategy) in ``figure`` (a 04_pareto.json figure)."""
    domain, split = figure["domain"], figure["split"]
    docs = (finetune.get("eval_documents") or {}).get(domain, {}).get(split)
    if docs is None:
        raise Untestable(EVIDENCE, f"no per-document CE for {domain} {split} (results written before it was kept)")
    common = figure["auc"].get("common")
    points = [p for p in figure["curves"].get(curve, []) if p.get("l0") is not None and p.get("y") is not None]
    if not common or not points:
        raise Untestable(f"curve {curve} is in the figure's common L0 window", f"{len(points)} points, window {common}")
    tokens = np.asarray(docs["tokens"], dtype=float)
    gsae = ce_arm(np.asarray(docs["gsae"], dtype=float)[None, :], tokens, split)
    rows = [r for r in finetune["rows"] if r["domain"] == domain and r["strategy"] == curve and float(r["tilt"]) == 0.0]
    seeds = sorted({int(r["seed"]) for r in rows})
    per_lambda = []
    for p in points:
        by_seed = {int(r["seed"]): r for r in rows if float(r["lambda"]) == float(p["lambda"])}
        if sorted(by_seed) != seeds or any(split not in (r.get("ce_sums") or {}) for r in by_seed.values()):
            raise Untestable(f"every seed of {curve} has per-document CE at every lambda",
                             f"lambda {p['lambda']:g}: seeds {sorted(by_seed)} of {seeds}")
        sums = np.array([by_seed[s]["ce_sums"][split] for s in seeds], dtype=float)
        per_lambda.append(relative_ppl(ce_arm(sums, tokens, split, seeds), gsae))
    weights = window_weights([p["l0"] for p in points], tuple(common))
    return weighted_sum(per_lambda, weights)


def _arms(finetune: Mapping[str, Any], pareto: Mapping[str, Any], fig: str, curves: tuple[str, ...]) -> dict[str, Arm]:
    figure = pareto["figures"].get(fig)
    if figure is None:
        raise Untestable(f"figure {fig} is in 04_pareto.json")
    return {c: curve_arm(finetune, figure, c) for c in curves}


def _untestable(name: str, expected: str, failed: Precondition) -> SubTest:
    pre = (failed,) if failed.name == EVIDENCE else (Precondition(EVIDENCE, True), failed)
    return SubTest(name, expected, None, pre)  # type: ignore[arg-type]


def gap_test(finetune: Mapping[str, Any], pareto: Mapping[str, Any], fig: str, a: str, b: str, name: str) -> SubTest:
    """``a - b`` in mean relative PPL over ``fig``'s common window; claimed negative."""
    try:
        arms = _arms(finetune, pareto, fig, (a, b))
    except Untestable as err:
        return _untestable(name, "negative", err.precondition)
    return SubTest(name, "negative", contrast(arms, {a: 1.0, b: -1.0}), (Precondition(EVIDENCE, True),))


def degradation_test(finetune: Mapping[str, Any], pareto: Mapping[str, Any], strategy: str, test_fig: str,
                     ood_fig: str, name: str) -> SubTest:
    """``(strategy - dense)`` on OOD minus on test, each strategy's seeds paired across the
    splits (the same SSAEs); claimed positive."""
    try:
        test = _arms(finetune, pareto, test_fig, (strategy, "dense"))
        ood = _arms(finetune, pareto, ood_fig, (strategy, "dense"))
        arms = {s: ood[s].plus(test[s], -1.0) for s in (strategy, "dense")}
    except Untestable as err:
        return _untestable(name, "positive", err.precondition)
    except ValueError as err:     # other seeds on the two splits
        return _untestable(name, "positive", Precondition("each strategy has the same seeds on both splits", False, str(err)))
    return SubTest(name, "positive", contrast(arms, {strategy: 1.0, "dense": -1.0}), (Precondition(EVIDENCE, True),))


def pareto_subtests(finetune: Mapping[str, Any] | None, pareto: Mapping[str, Any]) -> dict[str, list[SubTest]]:
    """C1-C5's sub-tests, the same comparisons as ``scorecard.pareto_claims``."""
    if finetune is None:
        missing = (Precondition(EVIDENCE, False, "03_finetune.json is not there"),)
        names = {"C1": ["Dense - General"], "C2": ["Dense - BM25"], "C3": ["(BM25 - Dense) OOD minus test"],
                 "C4": ["Dense-TracIn - Dense", "BM25-TracIn - BM25"],
                 "C5": ["Seed-only - General", "(Seed-only - Dense) OOD minus test"]}
        return {c: [SubTest(n, "positive" if "OOD" in n else "negative", None, missing) for n in ns] for c, ns in names.items()}
    g = lambda a, b, n: gap_test(finetune, pareto, "fig1a", a, b, n)   # noqa: E731
    d = lambda s, n: degradation_test(finetune, pareto, s, "fig1a", "fig4", n)   # noqa: E731
    return {"C1": [g("dense", "general", "mean PPL/GSAE, Dense - General")],
            "C2": [g("dense", "bm25", "mean PPL/GSAE, Dense - BM25")],
            "C3": [d("bm25", "(BM25 - Dense) OOD minus (BM25 - Dense) test")],
            "C4": [g("dense_tracin", "dense", "Dense-TracIn - Dense"), g("bm25_tracin", "bm25", "BM25-TracIn - BM25")],
            "C5": [g("seed_only", "general", "Seed-only - General"),
                   d("seed_only", "(Seed-only - Dense) OOD minus (Seed-only - Dense) test")]}
