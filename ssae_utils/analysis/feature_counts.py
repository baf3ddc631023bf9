"""How often each feature fires on the test data (paper Figs. 3a and 7) and dead features.

A feature's activation count is the number of test tokens on which its activation is > 0.
The SSAEs are finetuned from the GSAE, so feature i is "the same feature" in every model and
per-feature differences between two SSAEs are meaningful (Fig. 7).
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def activation_counts(sae: Any, acts: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """long [d_sae]: tokens of ``acts`` [n_tokens, d_in] on which each feature fires."""
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ValueError(f"expected a non-empty activation matrix [n_tokens, d_in], got {tuple(acts.shape)}")
    d_in = getattr(getattr(sae, "cfg", None), "d_in", acts.shape[1])
    if acts.shape[1] != d_in:
        raise ValueError(f"activations have d_model={acts.shape[1]} but the SAE expects d_in={d_in}: wrong layer or model?")
    counts = None
    for start in range(0, acts.shape[0], batch_size):
        fired = (sae.encode(acts[start : start + batch_size]) > 0).sum(0)
        counts = fired if counts is None else counts + fired
    return counts.long()


def rank_curve(counts: torch.Tensor) -> list[int]:
    """Activation counts sorted from the most to the least active feature (Fig. 3a)."""
    return torch.sort(counts, descending=True).values.tolist()


def count_summary(counts: torch.Tensor, n_tokens: int) -> dict[str, Any]:
    dead = int((counts == 0).sum())
    return {"dead_features": dead, "dead_fraction": dead / counts.numel(), "alive_features": counts.numel() - dead,
            "mean_count": float(counts.double().mean()), "median_count": float(counts.double().median()),
            "l0": float(counts.sum()) / n_tokens}


def difference_histogram(counts: torch.Tensor, baseline: torch.Tensor, bins: int) -> dict[str, Any]:
    """Histogram of per-feature ``counts - baseline`` (Fig. 7), with integer-aligned edges
    symmetric about 0, and summaries: mean, median, share of features above / below / equal."""
    if counts.shape != baseline.shape:
        raise ValueError(f"feature counts of different SAE widths: {tuple(counts.shape)} vs {tuple(baseline.shape)}")
    diff = (counts - baseline).double()
    reach = max(1.0, float(diff.abs().max()))
    edges = torch.linspace(-reach, reach, bins + 1, dtype=torch.float64)
    hist = torch.histogram(diff, bins=edges).hist
    return {"edges": edges.tolist(), "counts": [int(h) for h in hist], "mean": float(diff.mean()),
            "median": float(diff.median()), "share_positive": float((diff > 0).double().mean()),
            "share_negative": float((diff < 0).double().mean()), "share_zero": float((diff == 0).double().mean())}
