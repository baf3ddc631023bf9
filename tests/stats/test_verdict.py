"""The four-outcome rule: sub-test outcomes, Holm over the family, the combination rule."""

from __future__ import annotations

import pytest

from ssae_utils.stats.hierarchical import Component, Estimate
from ssae_utils.stats.power import mde
from ssae_utils.stats.verdict import SEEDS_PRECONDITION, Precondition, SubTest, combine, judge_family


def est(effect, se, df=1e9, known=True):
    return Estimate(effect, se, df, (Component("documents test", se * se, 10**9),), {"a": 3, "b": 3 if known else 1},
                    {"test": 40}, known, () if known else ("b",))


def test_each_outcome_of_a_single_sub_test():
    out = judge_family({
        "down": [SubTest("a - b", "negative", est(-5.0, 1.0))],
        "up": [SubTest("a - b", "negative", est(5.0, 1.0))],
        "flat": [SubTest("a - b", "negative", est(-0.5, 1.0))],
        "one seed": [SubTest("a - b", "negative", est(-5.0, 1.0, known=False))],
        "no data": [SubTest("a - b", "negative", None, (Precondition("per-document CE kept", False, "old results"),))],
    })
    assert {c: r.outcome for c, r in out.items()} == {"down": "reproduced", "up": "contradicted", "flat": "inconclusive",
                                                     "one seed": "untestable", "no data": "untestable"}
    assert out["down"].family_size == 3          # untestable sub-tests are not in the Holm family
    seeds = [p for p in out["one seed"].subtests[0].preconditions if p.name == SEEDS_PRECONDITION][0]
    assert not seeds.ok and "b" in seeds.detail
    flat = out["flat"].subtests[0]
    # the MDE of an inconclusive test: at its Holm step level (rank 3 of 3: alpha / 1)
    assert flat.level == pytest.approx(0.95) and flat.mde == pytest.approx(mde(1.0, 0.05))
    down = out["down"].subtests[0]
    assert down.interval[1] < 0 and down.n_seeds == {"a": 3, "b": 3} and down.n_docs == {"test": 40}


def test_holm_makes_a_marginal_effect_inconclusive_in_a_family():
    # z = 2.2: p = 0.028 alone (reproduced), but 4th of 4 similar tests after 3 strong ones:
    # its step is alpha / 1 and it passes; with 4 marginal ones the first step needs p < 0.0125
    alone = judge_family({"c": [SubTest("x", "positive", est(2.2, 1.0))]})
    assert alone["c"].outcome == "reproduced"
    many = judge_family({f"c{k}": [SubTest("x", "positive", est(2.2, 1.0))] for k in range(4)})
    assert all(r.outcome == "inconclusive" for r in many.values())
    assert all(r.subtests[0].p_adjusted == pytest.approx(min(1, 4 * r.subtests[0].p), rel=1e-6) for r in many.values())


def test_small_df_widens_the_test():
    # z = 3 with 2 df: p = 0.095, not significant; with many df it is
    assert judge_family({"c": [SubTest("x", "positive", est(3.0, 1.0, df=2))]})["c"].outcome == "inconclusive"
    assert judge_family({"c": [SubTest("x", "positive", est(3.0, 1.0, df=200))]})["c"].outcome == "reproduced"


@pytest.mark.parametrize("outcomes,expected", [
    (["reproduced", "reproduced"], "reproduced"),
    (["reproduced", "inconclusive"], "inconclusive"),
    (["reproduced", "contradicted"], "contradicted"),      # a conjunction with a false part is false
    (["contradicted", "untestable"], "contradicted"),
    (["reproduced", "untestable"], "untestable"),
    (["inconclusive", "untestable"], "untestable"),
    (["inconclusive", "inconclusive"], "inconclusive"),
    ([], "untestable"),
])
def test_combination_rule(outcomes, expected):
    assert combine(outcomes) == expected
