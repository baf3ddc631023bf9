"""SAEBench's SCR: latent effects, top-N choice and the oracle normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssae_utils.bios.probe import LinearProbe
from ssae_utils.bios.scr import scr_effects, scr_score, top_latents


def test_scr_normalization():
    assert scr_score(0.9, 0.6, 0.9) == pytest.approx(1.0)     # as good as the oracle
    assert scr_score(0.6, 0.6, 0.9) == pytest.approx(0.0)     # no gain
    assert scr_score(0.5, 0.6, 0.9) == pytest.approx(-1 / 3)  # worse than before
    assert scr_score(0.95, 0.8, 0.8) is None                   # oracle no better: undefined


def test_effects_rank_the_latent_that_differs_by_gender_and_aligns_with_the_probe():
    gender = np.array([0, 0, 1, 1])
    pooled = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.1, 2.0], [1.0, 3.0, 0.0], [1.0, 2.9, 0.0]])
    W_dec = torch.eye(3)
    probe = LinearProbe(torch.tensor([5.0, 1.0, 0.1], dtype=torch.float64), 0.0)
    effects = scr_effects(pooled, gender, W_dec, probe)
    # latent 0 is aligned with the probe but identical across genders: effect 0
    assert effects[0] == 0 and effects[1] > effects[2] > 0
    assert top_latents(effects, 1) == [1]
    assert top_latents(effects, 10) == [1, 2]                   # zero effects never count
    with pytest.raises(ValueError, match="one gender label"):
        scr_effects(pooled, np.array([0, 0, 0, 0]), W_dec, probe)
