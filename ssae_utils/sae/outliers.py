"""Tokens with extreme residual norms, handled deliberately rather than by accident.

A tiny share of Gemma's tokens have residual norms tens of times the median and carry a
large share of the total variance. Left in, they dominate the MSE term of SAE training. We
exclude them from training and pass them through splices unchanged, and we count them, so
every number that depends on this choice can be traced back to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NormThreshold:
    median_norm: float
    factor: float | None

    @property
    def limit(self) -> float:
        return float("inf") if self.factor is None else self.median_norm * self.factor

    @classmethod
    def fit(cls, acts: torch.Tensor, factor: float | None) -> "NormThreshold":
        if acts.ndim != 2 or acts.shape[0] == 0:
            raise ValueError(f"expected activations of shape [n_tokens, d_model], got {tuple(acts.shape)}")
        return cls(median_norm=float(acts.norm(dim=-1).median()), factor=factor)

    @classmethod
    def from_training_info(cls, info: dict, factor: float | None) -> "NormThreshold | None":
        """The threshold a GSAE was trained with, from its training info (None: no threshold,
        e.g. a pretrained SAE or ``outlier_norm_factor=None``)."""
        median = info.get("outliers", {}).get("median_norm")
        return cls(median, factor) if (median and factor) else None

    def is_outlier(self, acts: torch.Tensor) -> torch.Tensor:
        return acts.norm(dim=-1) > self.limit

    def summary(self, acts: torch.Tensor) -> dict[str, float]:
        norms = acts.norm(dim=-1)
        mask = norms > self.limit
        total_var = ((acts - acts.mean(0)) ** 2).sum()
        out_var = ((acts[mask] - acts.mean(0)) ** 2).sum() if mask.any() else torch.tensor(0.0)
        return {
            "median_norm": self.median_norm,
            "factor": self.factor if self.factor is not None else float("nan"),
            "n_tokens": int(acts.shape[0]),
            "n_outliers": int(mask.sum()),
            "outlier_share": float(mask.float().mean()),
            "outlier_variance_share": float(out_var / total_var) if total_var > 0 else 0.0,
            "max_norm": float(norms.max()),
        }
