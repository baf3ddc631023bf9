"""Holm's step-down on textbook examples; MDE formulas and their inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssae_utils.stats.multiplicity import holm, holm_adjust
from ssae_utils.stats.power import Design, design_mde, docs_for_mde, mde, mde_multiplier, power_at


def test_holm_textbook_example():
    # Holm (1979)-style example: p = .01, .04, .03, .005 with alpha .05, m = 4
    # sorted .005 (x4 = .02), .01 (x3 = .03), .03 (x2 = .06), .04 (x1 = .04 -> max .06)
    p = {"H1": 0.01, "H2": 0.04, "H3": 0.03, "H4": 0.005}
    out = holm(p, 0.05)
    assert {n: r.p_adjusted for n, r in out.items()} == pytest.approx({"H1": 0.03, "H2": 0.06, "H3": 0.06, "H4": 0.02})
    assert {n for n, r in out.items() if r.rejected} == {"H1", "H4"}
    assert out["H4"].rank == 1 and out["H4"].step_alpha == pytest.approx(0.0125)
    assert out["H3"].step_alpha == pytest.approx(0.025) and out["H2"].step_alpha == pytest.approx(0.05)


def test_holm_stops_at_the_first_failure_even_if_a_later_p_passes_its_step():
    # .04 passes its own step (alpha/1) but Holm stopped at .03 > .025: not rejected
    out = holm({"a": 0.001, "b": 0.03, "c": 0.04}, 0.05)
    assert [out[n].rejected for n in "abc"] == [True, False, False]
    assert out["c"].p <= out["c"].step_alpha and out["c"].p_adjusted == pytest.approx(0.06)


def test_holm_matches_hand_computed_values():
    # reference values computed by hand: m = 5
    p = [0.012, 0.004, 0.7, 0.02, 0.011]
    assert holm_adjust(p) == pytest.approx([0.044, 0.02, 0.7, 0.044, 0.044])
    assert holm_adjust([0.5]) == [0.5] and holm_adjust([0.6, 0.9]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        holm_adjust([1.2])


def test_mde_normal_formula_and_its_t_version():
    k = mde_multiplier(0.05)
    assert k == pytest.approx(1.959964 + 0.841621, rel=1e-6)
    assert mde(0.01) == pytest.approx(0.01 * k)
    assert mde(0.01, df=4) == pytest.approx(0.01 * (2.776445 + 0.940965), rel=1e-5)
    # Bonferroni/Holm first step for m = 7 claims: alpha / 7
    assert mde(1.0, alpha=0.05 / 7) == pytest.approx(2.690 + 0.8416, rel=1e-3)
    # at the MDE the power is (about) 80%
    assert power_at(mde(0.02), 0.02) == pytest.approx(0.8, abs=1e-3)


def test_mde_shrinks_like_one_over_sqrt_documents_without_seed_noise():
    d = Design(doc_var=0.5, n_docs=10, seed_var_a=0.0, n_seeds_a=3, seed_var_b=0.0, n_seeds_b=3)
    ratios = [design_mde(Design(0.5, n, 0.0, 3, 0.0, 3), t=False) / design_mde(d, t=False) for n in (40, 160, 640)]
    assert ratios == pytest.approx([1 / 2, 1 / 4, 1 / 8])
    # the t version approaches the normal one as documents grow
    big = Design(0.5, 10 ** 6, 0.0, 3, 0.0, 3)
    assert design_mde(big) == pytest.approx(design_mde(big, t=False), rel=1e-4)
    assert design_mde(d) > design_mde(d, t=False)


def test_seed_noise_sets_a_floor_and_docs_for_mde_inverts_the_mde():
    d = Design(doc_var=0.5, n_docs=10, seed_var_a=1e-4, n_seeds_a=3, seed_var_b=1e-4, n_seeds_b=3)
    floor = mde_multiplier(0.05) * math.sqrt(2e-4 / 3)
    assert docs_for_mde(d, 0.9 * floor, t=False) is None
    for target in (0.05, 0.1, 0.2):
        for t in (False, True):
            n = docs_for_mde(d, target, t=t)
            at = Design(0.5, n, 1e-4, 3, 1e-4, 3)
            below = Design(0.5, n - 1, 1e-4, 3, 1e-4, 3)
            assert design_mde(at, t=t) <= target < design_mde(below, t=t)
    with pytest.raises(ValueError, match="unknown"):
        design_mde(Design(0.5, 10, None, 1, 1e-4, 3))


def test_mde_matches_a_simulated_power_of_80_percent():
    # normal test statistics with SE 1 and true effect = MDE: 80% rejections (two-sided 5%)
    rng = np.random.default_rng(0)
    z = rng.normal(mde(1.0), 1.0, 20000)
    assert np.mean(np.abs(z) > 1.959964) == pytest.approx(0.8, abs=0.01)


def test_docs_for_target_scales_the_document_term_until_the_mde_reaches_the_target():
    from ssae_utils.stats.hierarchical import Component, Estimate
    from ssae_utils.stats.power import docs_for_target, mde
    from ssae_utils.stats.hierarchical import satterthwaite
    doc = Component("documents test", 0.01, 9)          # 10 documents, V_doc = 0.01
    seeds = Component("seeds a", 1e-6, 2)
    est = Estimate(0.1, math.sqrt(0.01 + 1e-6), 9.0, (doc, seeds), {"a": 3}, {"test": 10}, True)
    plan = docs_for_target(est, target=0.05, alpha=0.05)
    assert plan["reachable"] and plan["docs_now"] == {"test": 10}
    n = plan["docs_needed"]["test"]
    f = n / 10
    at = lambda f: mde(math.sqrt(0.01 / f + 1e-6), 0.05, 0.8, satterthwaite([(0.01 / f, 10 * f - 1), (1e-6, 2)]))  # noqa: E731
    assert at(f) <= 0.05 < at((n - 1) / 10)               # the fewest documents that reach it
    # a seed term above the target: no number of documents reaches it
    big = Estimate(0.1, 1.0, 2.0, (doc, Component("seeds a", 0.01, 2)), {"a": 3}, {"test": 10}, True)
    plan = docs_for_target(big, target=0.05)
    assert not plan["reachable"] and plan["docs_needed"] is None and plan["seed_floor_mde"] > 0.05
