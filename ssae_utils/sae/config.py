"""Configuration of the general-purpose SAE (GSAE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ssae_utils.validation import require as _require


@dataclass
class GSAEConfig:
    """The general-purpose SAE: trained here with SAELens, or loaded from a SAELens release."""

    source: Literal["train", "pretrained"] = "train"
    d_sae: int = 4096
    l1_coefficient: float = 5.0
    lr: float = 3e-4
    batch_size: int = 4096  # tokens per optimiser step
    train_tokens: int = 600_000  # total training samples (passes over the cached tokens)
    pool_tokens: int = 250_000  # general-pool tokens cached for GSAE training
    eval_tokens: int = 4096  # held-out general tokens for L0 / FVU / CE
    lr_warm_up_steps: int = 20
    lr_decay_fraction: float = 0.2  # linear decay over the last 20% of steps
    l1_warm_up_fraction: float = 0.05
    # Tokens whose residual norm exceeds this multiple of the median are left out of SAE
    # training and passed through unchanged in splices (they carry a large share of the
    # variance at a tiny share of tokens; see README). None keeps every token.
    outlier_norm_factor: float | None = 10.0
    pretrained_release: str | None = None  # e.g. "gemma-2b-res-jb"
    pretrained_sae_id: str | None = None  # e.g. "blocks.12.hook_resid_post"
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.source in ("train", "pretrained"), f"gsae.source must be 'train' or 'pretrained', not {self.source!r}")
        _require(self.d_sae >= 1 and self.batch_size >= 1, "gsae.d_sae and gsae.batch_size must be positive")
        _require(self.l1_coefficient >= 0, "gsae.l1_coefficient must be >= 0")
        _require(0 <= self.lr_decay_fraction <= 1, "gsae.lr_decay_fraction must be in [0, 1]")
        if self.source == "pretrained":
            _require(
                bool(self.pretrained_release and self.pretrained_sae_id),
                "gsae.source='pretrained' needs gsae.pretrained_release and gsae.pretrained_sae_id",
            )
        if self.outlier_norm_factor is not None:
            _require(self.outlier_norm_factor > 1, "gsae.outlier_norm_factor must be > 1 or None")
