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

from ssae_utils.sae.handle import SAEHandle, as_handle


def compressed_width(d_sae: int, fraction: float) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, int(math.floor(d_sae * fraction)))


@torch.no_grad()
def slice_sae(sae: Any, fraction: float) -> SAEHandle:
    """The SAE with the first ``fraction`` of ``sae``'s features, as a float32 CPU handle
    (raw activations in, like the full SAE)."""
    handle = as_handle(sae)
    m = compressed_width(handle.d_sae, fraction)
    return handle.select(slice(0, m)).to("cpu", torch.float32)


def slice_features(pooled: torch.Tensor, W_dec: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled features and decoder rows of the sliced SAE, from the full SAE's (no re-encoding)."""
    if pooled.shape[1] != W_dec.shape[0]:
        raise ValueError(f"pooled features have {pooled.shape[1]} columns but the decoder {W_dec.shape[0]} rows")
    m = compressed_width(W_dec.shape[0], fraction)
    return pooled[:, :m], W_dec[:m]
