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

C7's perplexity part (``term_ppl_test``) is the same machinery on the TERM figure (fig6): the
first TERM curve against Dense ERM over their common L0 band, as a non-inferiority test of
"TERM's mean relative perplexity is within ``COMPARABLE_RATIO`` of ERM's": the effect
``TERM - 1.1 x Dense`` is claimed negative (a fixed linear contrast of the two arms, paired on
the same documents, each with its own seeds).

Gaps to the GSAE (``vs_gsae``): beside each sub-test's effect (a difference between two arms),
each arm's *own* gap to the GSAE, its mean relative perplexity minus 1, with the same
hierarchical interval (its own seeds, and its documents paired with the GSAE's per-document CE,
which the relative perplexity already divides by). A report, not a verdict: it shows when a
claimed gain over the general-data baseline is a gain over a *damaged* baseline (General
significantly worse than the GSAE it was finetuned from, ``damaged_baseline_note``), so the
gap to General would overstate what finetuning on the subdomain buys over the GSAE itself.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ssae_utils.sae.pareto import curve_auc
from ssae_utils.sae.tilt_arms import arm_suffix, row_arm_suffix
from ssae_utils.stats.hierarchical import Arm, ce_arm, contrast, relative_ppl, weighted_sum
from ssae_utils.stats.verdict import Precondition, SubTest, finite_or_none

EVIDENCE = "03_finetune.json keeps per-document CE (eval_documents, ce_sums)"
# C7's "comparable" perplexity: TERM within this factor of ERM's mean relative PPL (the legacy
# verdict, ``scorecard.pareto_claims``, uses the same one)
COMPARABLE_RATIO = 1.10
BASELINE = "general"      # the general-data SSAE: the baseline whose own gap to the GSAE is checked
VS_GSAE_LEVEL = 0.95
TERM_MARK = "+TERM"
# what a C1-C5 (and C7 perplexity) interval speaks to
NOISE = ("the evaluation documents (a sample of the split, paired across arms) and each arm's own training "
         "seeds; the GSAE and the L0 grid are fixed")


def curve_of(strategy: str, tilt: float, suffix: str = "") -> str:
    """A row's curve name in 04_pareto.json (``pipeline.pareto.curve_name``; ``suffix``: how
    a TERM arm tilts when not raw over tokens, ``sae.term.arm_suffix``)."""
    return strategy if float(tilt) == 0 else f"{strategy}{TERM_MARK} t={float(tilt):g}{suffix}"


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
    """The arm of ``curve`` (an ERM strategy, or a TERM curve "dense+TERM t=500") in ``figure``
    (a 04_pareto.json figure)."""
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
    rows = [r for r in finetune["rows"] if r["domain"] == domain
            and curve_of(r["strategy"], r["tilt"], row_arm_suffix(r)) == curve]
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


def shared_window(figure: Mapping[str, Any], curves: Sequence[str]) -> list[float] | None:
    """The part of the figure's L0 window that every one of ``curves`` covers (None: none)."""
    lo, hi = (float(x) for x in (figure.get("l0_window") or figure["auc"]["window"]))
    for c in curves:
        l0 = [p["l0"] for p in figure["curves"].get(c, []) if p.get("l0") is not None and p.get("y") is not None]
        if len(l0) < 2:
            return None
        lo, hi = max(lo, min(l0)), min(hi, max(l0))
    return [lo, hi] if lo < hi else None


def _untestable(name: str, expected: str, failed: Precondition) -> SubTest:
    pre = (failed,) if failed.name == EVIDENCE else (Precondition(EVIDENCE, True), failed)
    return SubTest(name, expected, None, pre)  # type: ignore[arg-type]


def gap_to_gsae(arm: Arm, name: str, split: str, level: float = VS_GSAE_LEVEL) -> dict[str, Any]:
    """One arm's mean relative perplexity minus 1 (its gap to the GSAE, > 0: worse than the
    GSAE), with its hierarchical interval (own seeds; documents paired with the GSAE's, which
    the arm's relative perplexity already divides by). ``significant``: the interval excludes
    0 (None when the arm's seed variance is unknown: one seed, the interval is a lower bound)."""
    e = contrast({name: arm}, {name: 1.0})
    lo, hi = e.interval(level)
    known = e.seed_variance_known and not e.unknown_doc_variance and e.se > 0
    return {"arm": name, "split": split, "effect": e.effect - 1.0, "se": e.se, "df": finite_or_none(e.df),
            "interval": [lo - 1.0, hi - 1.0], "level": level, "n_seeds": e.n_seeds[name], "n_docs": dict(e.n_docs),
            "seed_variance_known": e.seed_variance_known,
            "significant": (lo - 1.0 > 0 or hi - 1.0 < 0) if known else None}


def damaged_baseline_note(vs_gsae: Mapping[str, Mapping[str, Any]], baseline: str = BASELINE) -> str | None:
    """A flagged note when the baseline arm is itself significantly worse than the GSAE."""
    worse = [g for g in vs_gsae.values() if g["arm"] == baseline and g["significant"] and g["effect"] > 0]
    if not worse:
        return None
    parts = []
    for g in worse:
        lo, hi = g["interval"]
        others = "; ".join(f"{o['arm']} {o['effect']:+.3g} [{o['interval'][0]:+.3g}, {o['interval'][1]:+.3g}]"
                           for o in vs_gsae.values() if o["arm"] != baseline and o["split"] == g["split"])
        parts.append(f"{g['split']}: {baseline} PPL/GSAE - 1 = {g['effect']:+.3g} [{lo:+.3g}, {hi:+.3g}] "
                     f"({g['level']:.0%})" + (f"; vs the GSAE: {others}" if others else ""))
    return (f"damaged baseline: the {baseline}-data SSAE is itself significantly worse than the GSAE "
            f"({'; '.join(parts)}), so a gap to it overstates the gain over the GSAE (a report; the verdict is unchanged)")


def _with_gsae_report(test: SubTest, arms_by_split: Mapping[str, Mapping[str, Arm]]) -> SubTest:
    """``test`` with each arm's gap to the GSAE on every split it is measured on, and the
    damaged-baseline note where it applies."""
    single = len(arms_by_split) == 1
    vs = {(a if single else f"{a} ({split})"): gap_to_gsae(arm, a, split)
          for split, arms in arms_by_split.items() for a, arm in arms.items()}
    note = damaged_baseline_note(vs)
    return SubTest(test.name, test.expected, test.estimate, test.preconditions, test.hierarchical, test.noise, vs,
                   test.notes + ((note,) if note else ()))


def gap_test(finetune: Mapping[str, Any], pareto: Mapping[str, Any], fig: str, a: str, b: str, name: str) -> SubTest:
    """``a - b`` in mean relative PPL over ``fig``'s common window; claimed negative."""
    try:
        arms = _arms(finetune, pareto, fig, (a, b))
    except Untestable as err:
        return _untestable(name, "negative", err.precondition)
    test = SubTest(name, "negative", contrast(arms, {a: 1.0, b: -1.0}), (Precondition(EVIDENCE, True),),
                   noise=NOISE)
    return _with_gsae_report(test, {pareto["figures"][fig]["split"]: arms})


def judged_curve(sweep: Mapping[str, Any], curves: Mapping[str, Any]) -> str | None:
    """The curve of the judged TERM arm (``finetune.judged_tilt``, else the first of
    ``term_tilts``) among ``curves``; without a recorded sweep, the first TERM curve."""
    tilts = sweep.get("term_tilts") or ()
    judged = sweep.get("judged_tilt") if sweep.get("judged_tilt") is not None else (tilts[0] if tilts else None)
    if judged is not None:
        name = curve_of(sweep.get("term_strategy", "dense"), float(judged),
                        arm_suffix(sweep.get("tilt_normalize", "raw"), sweep.get("tilt_over", "tokens")))
        if name in curves:
            return name
    return next((c for c in curves if TERM_MARK in c), None)


def other_arm_ppl_tests(finetune: Mapping[str, Any] | None, pareto: Mapping[str, Any],
                        figs: Sequence[str] = ("fig6", "fig6_arms")) -> list[SubTest]:
    """C7's perplexity test for every TERM curve but the judged one (``figs``: the paper's
    figure and its term_arms companion), each over the L0 window it shares with Dense ERM."""
    if finetune is None:
        return []
    seen, out = set(), []
    judged = next((judged_curve(finetune.get("sweep") or {}, pareto["figures"][f]["curves"])
                   for f in figs if f in pareto["figures"]), None)
    for fig in figs:
        for name in (pareto["figures"].get(fig) or {}).get("curves", {}):
            if TERM_MARK in name and name != judged and name not in seen:
                seen.add(name)
                out.append(term_ppl_test(finetune, pareto, fig, curve=name))
    return out


def term_ppl_test(finetune: Mapping[str, Any] | None, pareto: Mapping[str, Any], fig: str = "fig6",
                  ratio: float = COMPARABLE_RATIO, curve: str | None = None) -> SubTest:
    """C7's perplexity part: the judged TERM arm's curve of ``fig`` against Dense ERM, non-inferiority
    with margin ``ratio``: ``TERM - ratio x Dense`` in mean relative PPL over the figure's
    common L0 band, claimed negative (reproduced: TERM's perplexity is significantly below
    ``ratio`` times ERM's)."""
    name = f"mean PPL/GSAE, TERM - {ratio:g} x Dense ERM (non-inferiority: comparable if < 0)"
    if finetune is None:
        return SubTest(name, "negative", None, (Precondition(EVIDENCE, False, "03_finetune.json is not there"),))
    figure = pareto["figures"].get(fig)
    if figure is None:
        return _untestable(name, "negative", Precondition(f"figure {fig} is in 04_pareto.json", False))
    term = judged_curve(finetune.get("sweep") or {}, figure["curves"]) if curve is None else curve
    if term is None or term not in figure["curves"]:
        return _untestable(name, "negative", Precondition(f"figure {fig} has a TERM curve", False))
    name = name.replace("TERM -", f"{term} -")
    if curve is not None:   # one arm of the bracket against ERM: over the window the two share
        figure = {**figure, "auc": {**figure["auc"], "common": shared_window(figure, (term, "dense"))}}
    try:
        arms = {c: curve_arm(finetune, figure, c) for c in (term, "dense")}
    except Untestable as err:
        return _untestable(name, "negative", err.precondition)
    est = contrast(arms, {term: 1.0, "dense": -ratio})
    ratio_now = arms[term].mean / arms["dense"].mean
    test = SubTest(name, "negative", est, (Precondition(EVIDENCE, True),), noise=NOISE,
                   notes=(f"{term}'s mean PPL/GSAE is {ratio_now:.3g} x Dense ERM's over L0 "
                          f"{figure['auc']['common'][0]:.1f}-{figure['auc']['common'][1]:.1f} (comparable: <= {ratio:g})",))
    return _with_gsae_report(test, {figure["split"]: arms})


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
    sub = SubTest(name, "positive", contrast(arms, {strategy: 1.0, "dense": -1.0}), (Precondition(EVIDENCE, True),),
                  noise=NOISE + " (each strategy's seeds paired across the two splits)")
    return _with_gsae_report(sub, {pareto["figures"][test_fig]["split"]: test, pareto["figures"][ood_fig]["split"]: ood})


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
