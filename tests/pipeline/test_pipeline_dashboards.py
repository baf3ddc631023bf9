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


def _candidate(feature, rank, selected, share=0.9):
    return {"feature": feature, "rank": rank, "selected": selected, "attribution": 1.0 / (rank + 1), "gender_share": share}


def test_gender_features_are_the_ablated_ones_and_the_top_candidates_of_each_full_sae():
    from ssae_utils.pipeline.dashboards import full_view_name, gender_features

    audit = {
        "GSAE": [_candidate(7, 0, True), _candidate(3, 1, False), _candidate(9, 2, False), _candidate(11, 3, True)],
        "GSAE 1/8": [_candidate(2, 0, True), _candidate(1, 1, False)],        # the slice's feature 2 is the GSAE's
        "SSAE seed 1": [_candidate(5, 0, False)],
        "SSAE seed 1 1/8": [_candidate(4, 0, False)],                         # neither selected nor of the full view
        "Random": [_candidate(8, 0, True)],                                   # not an SAE of the study: ignored
    }
    chosen = gender_features(audit, ["GSAE", "SSAE seed 1"], candidates=2)
    assert list(chosen["GSAE"]) == [2, 3, 7, 11]       # selected anywhere, plus the full view's top-2 candidates
    assert "ablated by SHIFT in the GSAE 1/8" in chosen["GSAE"][2] and "rank 1" in chosen["GSAE"][2]
    assert "not selected" in chosen["GSAE"][3] and 9 not in chosen["GSAE"]
    assert list(chosen["SSAE seed 1"]) == [5]
    assert full_view_name("SSAE seed 1 1/8", {"SSAE seed 1"}) == "SSAE seed 1" and full_view_name("Random", {"GSAE"}) is None
