"""F1 edge cases and the bootstrap interval."""

from __future__ import annotations

import math

import pytest

from ssae_utils.autointerp.scoring import bootstrap_mean_ci, score


def test_f1_and_edge_cases():
    s = score([1, 1, 0, 0], [1, 0, 1, 0])
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 1, 1, 1) and s.f1 == 0.5 and s.accuracy == 0.5
    assert score([1, 1, 0, 0], [1, 1, 0, 0]).f1 == 1.0
    none_predicted = score([0, 0, 0, 0], [1, 1, 0, 0])
    assert none_predicted.f1 == 0.0 and math.isnan(none_predicted.precision) and none_predicted.recall == 0.0
    all_predicted = score([1, 1, 1, 1], [1, 1, 0, 0])
    assert all_predicted.f1 == pytest.approx(2 / 3) and all_predicted.recall == 1.0
    assert math.isnan(score([0, 0], [0, 0]).f1)  # no positives anywhere: undefined
    for bad in (([1], [1, 0]), ([2, 0], [1, 0]), ([], [])):
        with pytest.raises(ValueError):
            score(*bad)


def test_bootstrap_interval_brackets_the_mean_and_skips_nan():
    values = [0.2, 0.4, 0.6, 0.8, 1.0, float("nan")]
    ci = bootstrap_mean_ci(values, samples=500, seed=0)
    assert ci.n == 5 and ci.mean == pytest.approx(0.6) and ci.ci_low < 0.6 < ci.ci_high
    assert ci == bootstrap_mean_ci(values, samples=500, seed=0)
    assert bootstrap_mean_ci([0.5]).ci_low is None and bootstrap_mean_ci([]).mean is None
