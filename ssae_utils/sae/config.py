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
    # Tuned on the embedded profile (layer 12 of Gemma 3 270M, 600k samples): l1 0.4 / 1 / 2
    # gave held-out L0 330 / 104 / 33 and FVU 0.12 / 0.24 / 0.38; 1.0 lands mid-window.
    l1_coefficient: float = 1.0
    lr: float = 2e-3  # small budgets need a large step: 3e-4 left L0 at ~240 after 600k samples
    batch_size: int = 1024  # tokens per optimiser step (~590 steps for 600k samples)
    train_tokens: int = 600_000  # total training samples (passes over the cached tokens)
    pool_tokens: int = 250_000  # general-pool tokens cached for GSAE training
    eval_tokens: int = 4096  # held-out general tokens for L0 / FVU / CE
    lr_warm_up_steps: int = 20
    lr_decay_fraction: float = 0.2  # linear decay over the last 20% of steps
    l1_warm_up_fraction: float = 0.05
    # Tokens whose residual norm exceeds this multiple of the median are left out of SAE
    # training and passed through unchanged in splices (they carry a large share of the
    # variance at a tiny share of tokens; see README). None keeps every token.
    outlier_norm_factor: float | None = 3.0
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
