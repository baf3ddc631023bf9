"""Compress an SAE to a fraction of its width by slicing, as the paper did (1/8 of the features).

Slicing keeps the first ``m`` features: their encoder columns, biases and decoder rows are
unchanged, and a ReLU feature does not depend on the others, so the sliced SAE's features are
exactly the first ``m`` columns of the full SAE's. The reconstruction gets worse; in SHIFT the
error term absorbs what the dropped features carried. The SSAE is finetuned from the GSAE, so
feature ``i`` of both is the same feature before finetuning: the two slices are comparable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig


def compressed_width(d_sae: int, fraction: float) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, int(math.floor(d_sae * fraction)))


@torch.no_grad()
def slice_sae(sae: Any, fraction: float) -> StandardSAE:
    """A StandardSAE with the first ``fraction`` of ``sae``'s features (raw activations in)."""
    cfg = sae.cfg
    if not getattr(cfg, "apply_b_dec_to_input", True) or getattr(cfg, "normalize_activations", "none") != "none":
        raise ValueError("slice_sae needs a standard ReLU SAE that reads raw activations (apply_b_dec_to_input, "
                         "normalize_activations='none')")
    m = compressed_width(int(cfg.d_sae), fraction)
    small_cfg = StandardSAEConfig(d_in=int(cfg.d_in), d_sae=m, apply_b_dec_to_input=True, dtype="float32", device="cpu")
    small = StandardSAE(small_cfg)
    small.W_enc.copy_(sae.W_enc[:, :m])
    small.b_enc.copy_(sae.b_enc[:m])
    small.W_dec.copy_(sae.W_dec[:m])
    small.b_dec.copy_(sae.b_dec)
    return small.eval()


def slice_features(pooled: torch.Tensor, W_dec: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled features and decoder rows of the sliced SAE, from the full SAE's (no re-encoding)."""
    if pooled.shape[1] != W_dec.shape[0]:
        raise ValueError(f"pooled features have {pooled.shape[1]} columns but the decoder {W_dec.shape[0]} rows")
    m = compressed_width(W_dec.shape[0], fraction)
    return pooled[:, :m], W_dec[:m]
