"""Which features stage 05 gives dashboards: fixed rules, no look at a verdict."""

from __future__ import annotations

import numpy as np

from ssae_utils.pipeline.dashboards import random_features, tail_features


def test_tail_features_are_dense_only_word_like_first_one_per_token():
    rows = [
        {"token_id": 5, "token": " of", "count": 1, "covered_by": ["Dense SSAE"], "features": {"Dense SSAE": [9]}},
        {"token_id": 7, "token": " Planck", "count": 2, "covered_by": ["Dense SSAE"], "features": {"Dense SSAE": [3, 4]}},
        {"token_id": 8, "token": " sodium", "count": 1, "covered_by": ["Dense SSAE"], "features": {"Dense SSAE": [4]}},
        {"token_id": 9, "token": " quark", "count": 1, "covered_by": ["Dense SSAE", "General SSAE"], "features": {"Dense SSAE": [1]}},
    ]
    chosen = tail_features({"rows": rows}, "General SSAE", n=3)
    assert list(chosen) == [4, 3, 9]       # ' sodium' (rarest word) gets 4, ' Planck' its other feature 3, then ' of'
    assert "' sodium'" in chosen[4] and "General SSAE" in chosen[4]
    assert 1 not in chosen                 # the baseline covers ' quark'


def test_random_features_only_fire_and_are_reproducible():
    counts = np.array([0, 5, 0, 2, 7, 0, 1])
    first = random_features(counts, n=2, seed=0)
    assert first == random_features(counts, n=2, seed=0) and set(first) <= {1, 3, 4, 6}
    assert random_features(np.zeros(4), n=2) == {}
