"""Profession, gender and worst-group accuracy on hand-made predictions; bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.bios.metrics import bootstrap_ci, group_accuracies, shift_metrics, summarize

#                 group: s/m s/m s/f s/f p/m p/m p/f p/f
PROFESSION = np.array([0, 0, 0, 0, 1, 1, 1, 1])
GENDER = np.array([0, 0, 1, 1, 0, 0, 1, 1])


def test_a_probe_that_reads_only_gender():
    pred = GENDER.copy()
    m = shift_metrics(pred, PROFESSION, GENDER)
    assert m == {"profession_acc": 0.5, "gender_acc": 1.0, "worst_group_acc": 0.0}


def test_a_perfect_profession_probe_and_a_mixed_one():
    assert shift_metrics(PROFESSION, PROFESSION, GENDER) == {"profession_acc": 1.0, "gender_acc": 0.5, "worst_group_acc": 1.0}
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1])   # one female scholar called a performer
    assert group_accuracies(pred, PROFESSION, GENDER).tolist() == [1.0, 0.5, 1.0, 1.0]
    m = shift_metrics(pred, PROFESSION, GENDER)
    assert m["worst_group_acc"] == 0.5 and m["profession_acc"] == 7 / 8 and m["gender_acc"] == 5 / 8


def test_missing_group_and_shape_errors():
    with pytest.raises(ValueError, match="lacks a"):
        shift_metrics(np.zeros(4, int), np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="one length"):
        shift_metrics(np.zeros(3, int), PROFESSION, GENDER)


def test_bootstrap_ci_brackets_the_estimate_and_collapses_without_noise():
    rng = np.random.default_rng(0)
    prof, gender = np.repeat(PROFESSION, 20), np.repeat(GENDER, 20)
    preds = [np.where(rng.random(len(prof)) < 0.8, prof, 1 - prof) for _ in range(3)]
    ci = bootstrap_ci(preds, prof, gender, n_samples=200, level=0.9)
    point = np.mean([shift_metrics(p, prof, gender)["profession_acc"] for p in preds])
    assert ci["profession_acc"][0] < point < ci["profession_acc"][1]
    exact = bootstrap_ci([prof], prof, gender, n_samples=50, level=0.9)
    assert exact["profession_acc"] == (1.0, 1.0) and exact["gender_acc"] == (0.5, 0.5)   # resamples stay balanced
    assert bootstrap_ci([prof], prof, gender, n_samples=0, level=0.9)["worst_group_acc"] is None


def test_summarize_ignores_missing_values():
    assert summarize([1.0, None, 3.0]) == {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "n": 2}
    assert summarize([None]) == {"mean": None, "std": None, "n": 0}
