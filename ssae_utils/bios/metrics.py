"""SHIFT's three numbers on a balanced test set, and confidence intervals for them.

* profession accuracy: the profession probe against the profession labels;
* gender accuracy: the *same predictions* against the gender labels, with the ambiguous
  pairing (profession 0 <-> male, profession 1 <-> female). A probe that ignores gender
  scores 50% on a balanced set; one that reads only gender scores 100%;
* worst-group accuracy: the lowest profession accuracy over the four (profession x gender)
  groups.

Confidence intervals: the test set is resampled with replacement within each group (so every
resample stays balanced), the metric is averaged over the runs (seeds) on each resample, and
the percentile interval is reported. This captures test-sampling noise; the spread over seeds
is reported beside it. A document and its pronoun-swapped copy are resampled independently
although they are not independent, so the intervals are, if anything, too narrow.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

METRICS = ("profession_acc", "gender_acc", "worst_group_acc")


def _check(pred: np.ndarray, profession: np.ndarray, gender: np.ndarray) -> None:
    if not (pred.shape == profession.shape == gender.shape) or pred.ndim != 1:
        raise ValueError(f"predictions {pred.shape}, profession {profession.shape} and gender {gender.shape} "
                         "must be 1-d arrays of one length")


def group_accuracies(pred: np.ndarray, profession: np.ndarray, gender: np.ndarray) -> np.ndarray:
    """Profession accuracy of each group 2 * profession + gender (nan for an empty group)."""
    pred, profession, gender = (np.asarray(a) for a in (pred, profession, gender))
    _check(pred, profession, gender)
    group = 2 * profession + gender
    correct = pred == profession
    return np.array([correct[group == k].mean() if (group == k).any() else np.nan for k in range(4)])


def shift_metrics(pred: np.ndarray, profession: np.ndarray, gender: np.ndarray) -> dict[str, float]:
    pred, profession, gender = (np.asarray(a) for a in (pred, profession, gender))
    _check(pred, profession, gender)
    groups = group_accuracies(pred, profession, gender)
    if np.isnan(groups).any():
        raise ValueError("the test set lacks a (profession, gender) group: worst-group accuracy is undefined")
    return {"profession_acc": float((pred == profession).mean()), "gender_acc": float((pred == gender).mean()),
            "worst_group_acc": float(groups.min())}


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def bootstrap_ci(preds: Sequence[np.ndarray], profession: np.ndarray, gender: np.ndarray, n_samples: int,
                 level: float, seed: int = 0,
                 metric: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]] = shift_metrics,
                 ) -> dict[str, tuple[float, float] | None]:
    """Percentile CI of each metric's mean over runs, resampling test documents within groups."""
    profession, gender = np.asarray(profession), np.asarray(gender)
    if n_samples == 0 or not preds:
        return {m: None for m in METRICS}
    group = 2 * profession + gender
    members = [np.flatnonzero(group == k) for k in range(4)]
    rng = np.random.default_rng(seed)
    draws = {m: np.empty(n_samples) for m in METRICS}
    for b in range(n_samples):
        idx = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members if len(m)])
        per_run = [metric(np.asarray(p)[idx], profession[idx], gender[idx]) for p in preds]
        for m in METRICS:
            draws[m][b] = np.mean([r[m] for r in per_run])
    alpha = (1 - level) / 2
    return {m: (float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))) for m, d in draws.items()}
