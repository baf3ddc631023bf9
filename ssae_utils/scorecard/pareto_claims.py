"""Claims C1-C5 and the perplexity half of C7, measured on the Pareto curves (04_pareto.json):
the *legacy* k-sigma evidence (``legacy_verdict``; the headline verdicts are ``ssae_utils.stats``).

Every comparison uses a curve's *mean height* over the L0 window that all curves of its
figure cover (``auc.common``): the mean patched perplexity relative to the GSAE there, lower
is better. The noise is the seed-to-seed standard deviation of that height, pooled over the
curves of the figure that were trained with several seeds (``seed_spread``); it is training
noise on fixed evaluation tokens, which is what a comparison of two strategies on the same
tokens has to beat.
"""

from __future__ import annotations

import math
from typing import Any

from ssae_utils.results import PARETO_FILE
from ssae_utils.scorecard.verdict import Evidence, combine, judge, se_of_difference
# "comparable" perplexity for C7: TERM within this factor of ERM's mean relative PPL (one
# tolerance for the legacy verdict and the four-outcome non-inferiority test)
from ssae_utils.stats.pareto import COMPARABLE_RATIO


def pooled_seed_sd(figure: dict[str, Any]) -> float | None:
    """sqrt of the mean seed variance over the curves with >= 2 seeds (None if there are none)."""
    sds = [s["std"] for s in figure.get("seed_spread", {}).values() if s.get("std") is not None]
    return math.sqrt(sum(sd * sd for sd in sds) / len(sds)) if sds else None


def pooled_seed_sd_any(pareto: dict[str, Any], *figures: str) -> float | None:
    """The pooled seed SD of the first of ``figures`` that has one (relative-PPL figures of
    the same domain share their training runs, so their noise is interchangeable)."""
    for name in figures:
        fig = pareto["figures"].get(name)
        if fig is not None and (sd := pooled_seed_sd(fig)) is not None:
            return sd
    return None


def height(figure: dict[str, Any], curve: str) -> tuple[float | None, int]:
    """(mean height over the common window, number of seeds) of one curve."""
    auc = figure["auc"]["auc"].get(curve)
    points = figure["curves"].get(curve, [])
    n = min((p.get("seeds", 1) for p in points), default=0)
    return (auc["mean_y"] if auc else None), n


def gap_evidence(pareto: dict[str, Any], fig_name: str, a: str, b: str, metric: str, noise_from: tuple[str, ...]) -> Evidence:
    """Evidence that curve ``a`` lies below curve ``b`` in figure ``fig_name``; the metric's
    name is prefixed with the figure's domain and split ("<domain> test: ...")."""
    fig = pareto["figures"].get(fig_name)
    if fig is None:
        return Evidence(metric, None, None, "negative", "inconclusive", note=f"figure {fig_name} is not in {PARETO_FILE}")
    metric = f"{fig.get('domain', '?')} {fig.get('split', '?').replace('ood_test', 'OOD test')}: {metric}" if metric else metric
    (ya, na), (yb, nb) = height(fig, a), height(fig, b)
    sd = pooled_seed_sd_any(pareto, fig_name, *noise_from)
    gap = None if ya is None or yb is None else ya - yb
    se = se_of_difference(sd, na, nb)
    note = None if sd is not None else "no curve has several seeds: the noise is unknown"
    return Evidence(metric, gap, se, "negative", judge(gap, se, "negative"),
                    {a: ya, b: yb, f"seeds {a}": na, f"seeds {b}": nb, "seed_sd": sd, "window": fig["auc"]["common"]}, note)


def claim_c1(pareto: dict[str, Any]) -> list[Evidence]:
    return [gap_evidence(pareto, "fig1a", "dense", "general", "mean PPL/GSAE, Dense - General", ("fig4",))]


def claim_c2(pareto: dict[str, Any]) -> list[Evidence]:
    return [gap_evidence(pareto, "fig1a", "dense", "bm25", "mean PPL/GSAE, Dense - BM25", ("fig4",))]


def _domain_of(pareto: dict[str, Any], fig_name: str) -> str:
    return pareto["figures"].get(fig_name, {}).get("domain", "?")


def _degradation(pareto: dict[str, Any], strategy: str, metric: str) -> Evidence:
    """Evidence that ``strategy`` falls behind Dense more out of distribution than in it:
    (strategy - Dense) on OOD minus (strategy - Dense) on test, predicted positive."""
    metric = f"{_domain_of(pareto, 'fig1a')}: {metric}"
    test = gap_evidence(pareto, "fig1a", strategy, "dense", "", ("fig4",))
    ood = gap_evidence(pareto, "fig4", strategy, "dense", "", ("fig1a",))
    if test.value is None or ood.value is None:
        return Evidence(metric, None, None, "positive", "inconclusive", note="fig1a or fig4 lacks a curve")
    value = ood.value - test.value
    se = None if test.se is None or ood.se is None else math.sqrt(test.se ** 2 + ood.se ** 2)
    return Evidence(metric, value, se, "positive", judge(value, se, "positive"),
                    {"test_gap": test.value, "ood_gap": ood.value, "test": test.values, "ood": ood.values},
                    None if se is not None else "no curve has several seeds: the noise is unknown")


def claim_c3(pareto: dict[str, Any]) -> list[Evidence]:
    return [_degradation(pareto, "bm25", "(BM25 - Dense) OOD minus (BM25 - Dense) test")]


def claim_c4(pareto: dict[str, Any]) -> list[Evidence]:
    return [gap_evidence(pareto, "fig1a", "dense_tracin", "dense", "Dense-TracIn - Dense", ("fig4",)),
            gap_evidence(pareto, "fig1a", "bm25_tracin", "bm25", "BM25-TracIn - BM25", ("fig4",))]


def claim_c5(pareto: dict[str, Any]) -> list[Evidence]:
    helps = gap_evidence(pareto, "fig1a", "seed_only", "general", "Seed-only - General", ("fig4",))
    return [helps, _degradation(pareto, "seed_only", "(Seed-only - Dense) OOD minus (Seed-only - Dense) test")]


def term_ppl_evidence(pareto: dict[str, Any]) -> list[Evidence]:
    """C7's perplexity half: each TERM curve's mean PPL/GSAE over the band where it and Dense
    ERM overlap, as a ratio to Dense's; "comparable" if within ``COMPARABLE_RATIO``."""
    fig = pareto["figures"].get("fig6")
    if fig is None:
        return [Evidence("TERM vs ERM perplexity", None, None, "negative", "inconclusive", note=f"fig6 is not in {PARETO_FILE}")]
    dense, _ = height(fig, "dense")
    out = []
    for name in fig["curves"]:
        if name == "dense":
            continue
        term, _ = height(fig, name)
        ratio = None if term is None or dense in (None, 0) else term / dense
        # a fixed tolerance, not a noise test: "comparable" is a statement about size
        verdict = "inconclusive" if ratio is None else ("reproduced" if ratio <= COMPARABLE_RATIO else "not reproduced")
        out.append(Evidence(f"{fig.get('domain', '?')} test: {name} mean PPL/GSAE / Dense's (comparable if <= {COMPARABLE_RATIO})", ratio, None,
                            "negative", verdict, {name: term, "dense": dense, "band": fig["auc"]["common"]}))
    return out


def verdict_of(evidence: list[Evidence]) -> str:
    return combine([e.verdict for e in evidence])
