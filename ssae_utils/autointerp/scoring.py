"""F1 of predicted against true activation, and a bootstrap confidence interval of the mean."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass
class Score:
    f1: float  # nan only when there are no positives at all, predicted or true
    precision: float  # nan when nothing is predicted positive
    recall: float  # nan when nothing is truly positive
    accuracy: float
    tp: int
    fp: int
    fn: int
    tn: int

    def to_dict(self) -> dict:
        return asdict(self)


def score(predictions: Sequence[int], truth: Sequence[int]) -> Score:
    """F1 = 2 TP / (2 TP + FP + FN): predicting no positive while some exist gives F1 0."""
    if len(predictions) != len(truth):
        raise ValueError(f"{len(predictions)} predictions for {len(truth)} examples")
    if not len(truth):
        raise ValueError("nothing to score")
    for name, values in (("predictions", predictions), ("truth", truth)):
        if any(v not in (0, 1) for v in values):
            raise ValueError(f"{name} must be 0/1")
    p, t = np.asarray(predictions, dtype=int), np.asarray(truth, dtype=int)
    tp, fp = int(((p == 1) & (t == 1)).sum()), int(((p == 1) & (t == 0)).sum())
    fn, tn = int(((p == 0) & (t == 1)).sum()), int(((p == 0) & (t == 0)).sum())
    denom = 2 * tp + fp + fn
    return Score(
        f1=2 * tp / denom if denom else math.nan,
        precision=tp / (tp + fp) if tp + fp else math.nan,
        recall=tp / (tp + fn) if tp + fn else math.nan,
        accuracy=(tp + tn) / len(t),
        tp=tp, fp=fp, fn=fn, tn=tn,
    )


@dataclass
class MeanCI:
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    median: float | None
    level: float

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean_ci(values: Sequence[float], samples: int = 2000, level: float = 0.95, seed: int = 0) -> MeanCI:
    """Percentile bootstrap of the mean; NaNs are left out. Fewer than two values: no interval."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return MeanCI(0, None, None, None, None, level)
    if x.size == 1:
        return MeanCI(1, float(x[0]), None, None, float(x[0]), level)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(1)
    alpha = (1 - level) / 2
    return MeanCI(int(x.size), float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)),
                  float(np.median(x)), level)
