"""The paired hierarchical estimator: coverage of its 95% interval on synthetic evaluations
with a known truth, its bootstrap twin, its algebra, and one-seed arms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssae_utils.stats.hierarchical import (Arm, ce_arm, combine_with_seeds, contrast, difference, paired_bootstrap,
                                           relative_ppl, weighted_sum)
from tests.stats.synthetic import World, draw_docs, draw_sums

REPS = 400
BAND = (0.92, 0.98)   # 400 draws: a binomial SD of 1.1 points around 95%


def _coverage(one_draw, reps: int = REPS, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        est, truth = one_draw(rng)
        lo, hi = est.interval(0.95)
        hits += lo <= truth <= hi
    return hits / reps


WORLDS = {"balanced": World(), "no seed noise": World(seed_sd=0.0),
          "seed noise dominates": World(seed_sd=0.05, noise_sd=0.01),
          "token noise dominates": World(seed_sd=0.005, noise_sd=0.05)}


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("n_seeds,n_docs", [(3, 8), (3, 30), (5, 8), (5, 30)])
def test_difference_of_mean_ce_covers_95_percent(world, n_seeds, n_docs):
    w = WORLDS[world]

    def one(rng):
        tokens = draw_docs(rng, n_docs)
        sums = draw_sums(rng, w, {"a": 4.0, "b": 3.9}, {"a": n_seeds, "b": n_seeds}, tokens)
        return difference(ce_arm(sums["a"], tokens, "test"), ce_arm(sums["b"], tokens, "test")), 0.1

    cover = _coverage(one, seed=n_seeds * 100 + n_docs)
    assert BAND[0] <= cover <= BAND[1], f"{world}, {n_seeds} seeds, {n_docs} docs: coverage {cover:.3f}"


def test_unequal_seed_counts_cover_95_percent():
    def one(rng):
        tokens = draw_docs(rng, 12)
        sums = draw_sums(rng, World(seed_sd=0.04), {"a": 4.0, "b": 4.0}, {"a": 3, "b": 5}, tokens)
        return difference(ce_arm(sums["a"], tokens, "test"), ce_arm(sums["b"], tokens, "test")), 0.0

    cover = _coverage(one, seed=11)
    assert BAND[0] <= cover <= BAND[1], cover


def _window_weights(l0: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """The mean height over ``window`` of the curve through (l0, y) is linear in y: its weights."""
    from ssae_utils.sae.pareto import curve_auc

    return np.array([curve_auc(l0, np.eye(l0.size)[k], window).mean_y for k in range(l0.size)])


@pytest.mark.parametrize("n_seeds,n_docs", [(3, 8), (5, 30)])
def test_relative_perplexity_auc_difference_covers_95_percent(n_seeds, n_docs):
    # two strategies, 4 lambdas each, relative perplexity exp(CE - CE_GSAE) averaged over an
    # L0 window with the trapezoid weights of sae.pareto (the Pareto claims' "mean height")
    l0 = np.array([40.0, 80.0, 120.0, 160.0])
    weights = _window_weights(l0, (60.0, 140.0))
    mu = {"a": np.array([4.3, 4.1, 4.0, 3.95]), "b": np.array([4.35, 4.2, 4.05, 4.0])}
    mu_gsae = 4.2
    truth = float(weights @ (np.exp(mu["a"] - mu_gsae) - np.exp(mu["b"] - mu_gsae)))
    w = World()

    def one(rng):
        tokens = draw_docs(rng, n_docs)
        beta = rng.normal(0, w.doc_sd, n_docs)
        gsae = draw_sums(rng, w, {"g": mu_gsae}, {"g": 1}, tokens, beta=beta, seed_effects={"g": np.zeros(1)})["g"]
        g = ce_arm(gsae, tokens, "test")
        arms = {}
        for s in ("a", "b"):
            effects = {f"{s}{k}": e for k, e in enumerate([rng.normal(0, w.seed_sd, n_seeds)] * 4)}
            per_lambda = draw_sums(rng, w, {f"{s}{k}": m for k, m in enumerate(mu[s])}, dict.fromkeys(effects, n_seeds),
                                   tokens, beta=beta, seed_effects=effects)
            arms[s] = weighted_sum([relative_ppl(ce_arm(per_lambda[f"{s}{k}"], tokens, "test"), g) for k in range(4)], weights)
        return difference(arms["a"], arms["b"]), truth

    cover = _coverage(one, seed=n_seeds + n_docs)
    assert BAND[0] <= cover <= BAND[1], cover


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_ood_minus_test_gap_paired_by_seed_covers_95_percent(n_seeds):
    # C3's shape: (b - a) on OOD minus (b - a) on test; each trained SSAE is evaluated on both
    # splits (its seed effect carries over, partly), the two splits have their own documents
    w = World(seed_sd=0.04)
    mu = {"test": {"a": 4.0, "b": 4.05}, "ood": {"a": 5.0, "b": 5.2}}
    truth = (5.2 - 5.0) - (4.05 - 4.0)

    def one(rng):
        arms = {}
        tok = {"test": draw_docs(rng, 10), "ood": draw_docs(rng, 14)}
        base = {s: rng.normal(0, w.seed_sd, n_seeds) for s in ("a", "b")}
        shift = {s: base[s] * 0.5 + rng.normal(0, w.seed_sd, n_seeds) for s in ("a", "b")}   # correlated seed effects
        sums = {"test": draw_sums(rng, w, mu["test"], dict.fromkeys("ab", n_seeds), tok["test"], seed_effects=base),
                "ood": draw_sums(rng, w, mu["ood"], dict.fromkeys("ab", n_seeds), tok["ood"], seed_effects=shift)}
        for s in ("a", "b"):
            arms[s] = ce_arm(sums["ood"][s], tok["ood"], "ood").plus(ce_arm(sums["test"][s], tok["test"], "test"), -1.0)
        return contrast(arms, {"b": 1.0, "a": -1.0}), truth

    cover = _coverage(one, seed=7 * n_seeds)
    assert BAND[0] <= cover <= BAND[1], cover


def test_pairing_by_seed_is_what_makes_the_ood_test_gap_precise():
    # the same SSAEs on both splits: a seed effect common to both cancels in OOD - test;
    # treating the splits' seeds as independent would add it twice
    rng = np.random.default_rng(1)
    tok = {"test": draw_docs(rng, 20), "ood": draw_docs(rng, 20)}
    effects = {"a": rng.normal(0, 0.2, 4)}
    sums = {p: draw_sums(rng, World(seed_sd=0.2, doc_sd=0.001, noise_sd=0.001, doc_strategy_sd=0.001), {"a": 4.0}, {"a": 4}, tok[p],
                         seed_effects=effects)["a"] for p in tok}
    test, ood = ce_arm(sums["test"], tok["test"], "test"), ce_arm(sums["ood"], tok["ood"], "ood")
    paired = contrast({"gap": ood.plus(test, -1.0)}, {"gap": 1.0})
    unpaired = contrast({"ood": ood, "test": test}, {"ood": 1.0, "test": -1.0})
    assert paired.effect == pytest.approx(unpaired.effect)
    assert paired.se < 0.2 * unpaired.se


def test_the_analytic_document_term_matches_the_paired_bootstrap():
    rng = np.random.default_rng(3)
    tokens = draw_docs(rng, 25)
    sums = draw_sums(rng, World(), {"a": 4.0, "b": 3.9}, {"a": 3, "b": 3}, tokens)
    est = difference(ce_arm(sums["a"], tokens, "test"), ce_arm(sums["b"], tokens, "test"))

    def statistic(idx):
        i = idx["test"]
        mean = {s: (sums[s][:, i].sum(1) / tokens[i].sum()).mean() for s in sums}
        return mean["a"] - mean["b"]

    boot = paired_bootstrap(statistic, {"test": 25}, n_boot=3000, seed=0)
    analytic = next(c.variance for c in est.components if c.source == "documents test")
    assert boot["test"] == pytest.approx(analytic, rel=0.1)
    both = combine_with_seeds(est, boot)
    assert both.effect == est.effect and both.se == pytest.approx(est.se, rel=0.1)
    assert [c.source for c in both.components][0] == "documents test (bootstrap)"


def test_equal_weight_case_is_the_crossed_anova_formula():
    # one arm, equal token counts: V = (MS_seeds + MS_docs - MS_residual) / (n D) when the
    # seed component is positive (the unbiased crossed-design variance of a grand mean)
    rng = np.random.default_rng(5)
    n, d = 4, 6
    x = rng.normal(0, 1, (n, d)) + rng.normal(0, 2, (n, 1)) + rng.normal(0, 1, (1, d))
    est = contrast({"a": ce_arm(x * 10, np.full(d, 10), "test")}, {"a": 1.0})
    grand = x.mean()
    ms_seeds = d * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    ms_docs = n * ((x.mean(0) - grand) ** 2).sum() / (d - 1)
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand
    ms_res = (resid ** 2).sum() / ((n - 1) * (d - 1))
    assert est.effect == pytest.approx(grand)
    assert est.se ** 2 == pytest.approx((ms_seeds + ms_docs - ms_res) / (n * d))


def test_a_one_seed_arm_has_unknown_seed_variance_never_borrowed():
    rng = np.random.default_rng(2)
    tokens = draw_docs(rng, 10)
    sums = draw_sums(rng, World(), {"a": 4.0, "b": 3.9}, {"a": 1, "b": 3}, tokens)
    est = difference(ce_arm(sums["a"], tokens, "test"), ce_arm(sums["b"], tokens, "test"), ("a", "b"))
    assert not est.seed_variance_known and est.unknown_seed_variance == ("a",)
    assert [c.source for c in est.components] == ["documents test", "seeds b"]
    assert est.n_seeds == {"a": 1, "b": 3} and est.n_docs == {"test": 10}


def test_arms_on_other_documents_or_other_seeds_cannot_be_paired():
    a = ce_arm(np.ones((2, 3)), np.ones(3), "test")
    b = ce_arm(np.ones((2, 4)), np.ones(4), "test")
    with pytest.raises(ValueError, match="different documents"):
        difference(a, b)
    with pytest.raises(ValueError, match="same seeds"):
        a.plus(Arm(a.values, a.influence, (5, 6)))


def test_satterthwaite_df_and_t_quantiles():
    from ssae_utils.stats.hierarchical import satterthwaite, t_quantile

    assert satterthwaite([(1.0, 4)]) == pytest.approx(4)
    # Welch's df for two equal variances with equal df: 2 df
    assert satterthwaite([(1.0, 5), (1.0, 5)]) == pytest.approx(10)
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, rel=1e-6)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, rel=1e-6)


def test_a_split_with_one_document_has_unknown_document_variance():
    from ssae_utils.stats.verdict import DOCS_PRECONDITION, SubTest, judge_family

    rng = np.random.default_rng(4)
    tokens = draw_docs(rng, 1)
    sums = draw_sums(rng, World(), {"a": 4.0, "b": 3.0}, {"a": 3, "b": 3}, tokens)
    est = difference(ce_arm(sums["a"], tokens, "ood"), ce_arm(sums["b"], tokens, "ood"))
    assert est.unknown_doc_variance == ("ood",) and est.seed_variance_known
    judged = judge_family({"c": [SubTest("a - b", "positive", est)]})["c"]
    assert judged.outcome == "untestable"
    assert [p.ok for p in judged.subtests[0].preconditions if p.name == DOCS_PRECONDITION] == [False]
