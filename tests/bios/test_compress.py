"""Slicing an SAE to a fraction of its features."""

from __future__ import annotations

import pytest
import torch

from ssae_utils.bios.compress import compressed_width, slice_features, slice_sae


def test_sliced_sae_has_exactly_the_first_features(tiny_sae):
    small = slice_sae(tiny_sae, 0.5)
    assert small.cfg.d_sae == 5
    x = torch.randn(40, 6)
    assert torch.allclose(small.encode(x), tiny_sae.encode(x)[:, :5], atol=1e-6)
    assert torch.equal(small.W_dec, tiny_sae.W_dec[:5]) and torch.equal(small.b_dec, tiny_sae.b_dec)


def test_slice_features_and_widths(tiny_sae):
    pooled = torch.rand(3, 10)
    p, W = slice_features(pooled, tiny_sae.W_dec.detach(), 0.125)
    assert p.shape == (3, 1) and W.shape == (1, 6)
    assert compressed_width(4096, 0.125) == 512 and compressed_width(3, 0.1) == 1
    with pytest.raises(ValueError):
        compressed_width(10, 0.0)
    with pytest.raises(ValueError, match="columns"):
        slice_features(torch.rand(3, 4), tiny_sae.W_dec.detach(), 0.5)
