"""The automatic gender criterion on synthetic features where the gender feature is known."""

from __future__ import annotations

import pytest
import torch

from ssae_utils.bios.selection import gender_share, select_gender_features


def _pairs(n=40, d_sae=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    content = torch.rand(n, d_sae, generator=gen)            # features that ignore gender
    female, male = content.clone(), content.clone()
    female[:, 3] = 2.0 + torch.rand(n, generator=gen)        # feature 3: "she/her" fires only on the female version
    male[:, 3] = 0.0
    female[:, 5] *= 1.2                                      # feature 5: mildly gendered
    return female, male


def test_gender_share_finds_the_planted_gender_feature():
    female, male = _pairs()
    share = gender_share(female, male)
    assert share[3] == pytest.approx(1.0)
    assert 0.05 < share[5] < 0.15
    others = [i for i in range(8) if i not in (3, 5)]
    assert torch.all(share[others] < 1e-6)
    assert gender_share(torch.zeros(2, 3), torch.zeros(2, 3)).tolist() == [0.0, 0.0, 0.0]   # never fires: 0, not nan


def test_selection_keeps_only_gendered_candidates_in_attribution_order():
    female, male = _pairs()
    share = gender_share(female, male)
    scores = torch.tensor([0.9, -0.8, 0.0, 0.5, 0.1, 0.7, 0.2, 0.0], dtype=torch.float64)
    chosen = select_gender_features(scores, share, n_candidates=4, threshold=0.5)
    assert chosen.candidates == [0, 1, 5, 3]                 # by |score|
    assert chosen.selected == [3]                            # feature 5 is only mildly gendered
    assert select_gender_features(scores, share, 2, 0.5).selected == []   # 3 is not among the top 2
    assert len(select_gender_features(scores, share, 100, 0.5).candidates) == 6  # zero scores never count


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        gender_share(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        gender_share(-torch.ones(2, 3), torch.zeros(2, 3))
