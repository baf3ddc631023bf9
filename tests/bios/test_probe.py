"""The logistic-regression probe and its raw-space folding."""

from __future__ import annotations

import pytest
import torch

from ssae_utils.bios.probe import fit_probe


def test_probe_learns_a_separable_direction_at_any_input_scale():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen) * torch.tensor([1.0, 100.0, 0.01, 5.0, 1.0]) + 1000.0
    y = (x[:, 2] - 1000.0 > 0).long()
    probe = fit_probe(x, y)
    assert probe.accuracy(x, y) > 0.97
    assert probe.direction.abs().argmax() == 2       # the informative dimension dominates in raw space


def test_folded_probe_equals_the_standardized_model():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=gen) * 3 + 2
    y = (x[:, 0] + 0.5 * torch.randn(50, generator=gen) > 2).long()
    probe = fit_probe(x, y, l2=0.1)
    mu, sigma = x.double().mean(0), x.double().std(0)
    w = probe.direction * sigma                       # back to standardized weights
    b = probe.bias + float((probe.direction * mu).sum())
    assert torch.allclose(probe.logits(x), ((x.double() - mu) / sigma) @ w + b, atol=1e-9)


def test_probe_refuses_one_class_and_bad_shapes():
    with pytest.raises(ValueError, match="both classes"):
        fit_probe(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="x \\[n, d\\]"):
        fit_probe(torch.randn(4, 2), torch.zeros(3, dtype=torch.long))
    probe = fit_probe(torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
    with pytest.raises(ValueError, match="expects inputs"):
        probe.logits(torch.randn(3, 5))
