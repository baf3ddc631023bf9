"""Activation counts, dead features, count differences and decoder cosines on hand-made SAEs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ssae_utils.analysis.decoder_geometry import cosine_histogram
from ssae_utils.analysis.feature_counts import activation_counts, count_summary, difference_histogram, rank_curve


class ReluSAE:
    def __init__(self, W_enc):
        self.W_enc = W_enc
        self.cfg = SimpleNamespace(d_in=W_enc.shape[0])

    def encode(self, x):
        return torch.relu(x @ self.W_enc)


def test_activation_counts_rank_curve_and_dead_features():
    sae = ReluSAE(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]))  # f0 fires on x0 > 0, f1 on x0 < 0, f2 never
    acts = torch.tensor([[1.0, 0], [2.0, 0], [-1.0, 0], [0.5, 3]])
    counts = activation_counts(sae, acts, batch_size=3)  # two batches
    assert counts.tolist() == [3, 1, 0]
    assert rank_curve(counts) == [3, 1, 0]
    s = count_summary(counts, n_tokens=4)
    assert s["dead_features"] == 1 and s["alive_features"] == 2 and s["l0"] == 1.0
    with pytest.raises(ValueError, match="d_in=2"):
        activation_counts(sae, torch.ones(2, 3))


def test_difference_histogram():
    h = difference_histogram(torch.tensor([5, 0, 3, 7]), torch.tensor([2, 0, 4, 7]), bins=6)
    assert sum(h["counts"]) == 4 and h["edges"][0] == -3 and h["edges"][-1] == 3
    assert h["counts"] == [0, 0, 1, 2, 0, 1]  # -1 in [-1, 0); 0, 0 in [0, 1); 3 in the closed last bin
    assert h["mean"] == pytest.approx(0.5) and h["share_positive"] == 0.25 and h["share_zero"] == 0.5
    with pytest.raises(ValueError, match="widths"):
        difference_histogram(torch.tensor([1]), torch.tensor([1, 2]), 3)


def test_cosine_histogram_by_hand():
    W_dec = torch.tensor([[2.0, 0, 0], [1.0, 0, 0], [0, 3.0, 0], [-1.0, 0, 0]])
    # pairs: (0,1)=1, (0,2)=0, (0,3)=-1, (1,2)=0, (1,3)=-1, (2,3)=0
    h = cosine_histogram(W_dec, bins=4, chunk=3)
    assert h["n_pairs"] == 6 and h["counts"] == [2, 0, 3, 1]
    assert h["mean"] == pytest.approx(-1 / 6) and h["share_above_0.9"] == pytest.approx(1 / 6)
    assert h["mean_max_cosine"] == pytest.approx(0.5)  # rows 0 and 1: 1; rows 2 and 3: 0
    with pytest.raises(ValueError):
        cosine_histogram(torch.ones(1, 3))
