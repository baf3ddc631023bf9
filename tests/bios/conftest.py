"""Tiny SAEs and synthetic pooled data for the Bias-in-Bios tests."""

from __future__ import annotations

import pytest
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig


def make_sae(d_in: int = 6, d_sae: int = 10, seed: int = 0) -> StandardSAE:
    """A random standard ReLU SAE whose features fire on about half of Gaussian inputs."""
    gen = torch.Generator().manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=True, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=gen))
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=gen) / d_in ** 0.5)
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=gen))
    return sae.eval()


@pytest.fixture
def tiny_sae() -> StandardSAE:
    return make_sae()
