"""Pareto curves (perplexity vs L0) and the area under them over an L0 window (paper §3.2).

A curve is a set of (L0, y) points, one per sparsity coefficient lambda (y: patched
perplexity, absolute or relative to the GSAE). The paper compares strategies by the area
under the curve for L0 in [60, 140]: lower is better. Here a curve is sorted by L0, joined
by straight lines, and integrated with the trapezoid rule over the part of the window it
covers (the ends are interpolated, never extrapolated). Because a curve that covers only part
of the window cannot be compared with one that covers all of it, ``compare_auc`` integrates
every curve over the window they *all* cover and says so; ``mean_y`` (area / width) is the
average height, comparable across widths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass
class CurveAUC:
    auc: float | None            # area over the covered part of the window (None: no overlap)
    mean_y: float | None         # auc / covered width: the curve's mean height there
    covered: tuple[float, float] | None
    window: tuple[float, float]
    coverage: float              # covered width / window width
    n_points: int
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sorted_curve(l0: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(l0, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    if x.shape != v.shape or x.ndim != 1:
        raise ValueError(f"l0 and y must be 1-d of equal length, got {x.shape} and {v.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(v))):
        raise ValueError("a Pareto curve holds NaN or infinite values; drop diverged runs first")
    # equal L0 values (e.g. several seeds landing on the same L0) are averaged
    uniq, inverse = np.unique(x, return_inverse=True)
    return uniq, np.bincount(inverse, weights=v) / np.bincount(inverse)


def curve_auc(l0: Sequence[float], y: Sequence[float], window: tuple[float, float] = (60.0, 140.0)) -> CurveAUC:
    """Trapezoid area under the piecewise-linear curve through (l0, y), over ``window``."""
    lo, hi = map(float, window)
    if not lo < hi:
        raise ValueError(f"the L0 window must have lo < hi, got {window}")
    x, v = _sorted_curve(l0, y)
    a, b = max(lo, x[0]) if len(x) else lo, min(hi, x[-1]) if len(x) else lo
    if len(x) < 2 or a >= b:
        where = "no points" if len(x) == 0 else f"L0 from {x[0]:.1f} to {x[-1]:.1f}"
        return CurveAUC(None, None, None, (lo, hi), 0.0, len(x),
                        f"the curve ({where}) does not overlap the L0 window [{lo:g}, {hi:g}]: widen the lambda grid")
    inside = (x > a) & (x < b)
    xs = np.concatenate([[a], x[inside], [b]])
    ys = np.interp(xs, x, v)
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    coverage = (b - a) / (hi - lo)
    warning = None
    if coverage < 1:
        warning = (f"the curve covers L0 [{a:.1f}, {b:.1f}] of the window [{lo:g}, {hi:g}] "
                   f"({coverage:.0%}); its AUC is over that part only")
    return CurveAUC(area, area / (b - a), (a, b), (lo, hi), coverage, len(x), warning)


def compare_auc(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                window: tuple[float, float] = (60.0, 140.0)) -> dict[str, Any]:
    """AUC of several curves over the common part of ``window`` that every curve covers.

    Returns {"window", "common", "auc": {name: CurveAUC dict}, "own": {name: CurveAUC over the
    full window}, "warnings": [...]}. A curve that misses the window entirely is left out of
    the common window and reported in the warnings.
    """
    own = {name: curve_auc(l0, y, window) for name, (l0, y) in curves.items()}
    warnings = [f"{name}: {c.warning}" for name, c in own.items() if c.warning]
    usable = {name: c for name, c in own.items() if c.covered is not None}
    if not usable:
        return {"window": list(window), "common": None, "auc": {}, "own": {n: c.to_dict() for n, c in own.items()},
                "warnings": warnings + ["no curve overlaps the L0 window"]}
    lo = max(c.covered[0] for c in usable.values())
    hi = min(c.covered[1] for c in usable.values())
    if not lo < hi:
        return {"window": list(window), "common": None, "auc": {}, "own": {n: c.to_dict() for n, c in own.items()},
                "warnings": warnings + ["the curves share no common L0 range inside the window"]}
    common = {name: curve_auc(*curves[name], (lo, hi)) for name in usable}
    if (lo, hi) != tuple(map(float, window)):
        warnings.append(f"AUCs compared over the common L0 range [{lo:.1f}, {hi:.1f}] of the window {list(window)}")
    return {"window": list(window), "common": [lo, hi], "auc": {n: c.to_dict() for n, c in common.items()},
            "own": {n: c.to_dict() for n, c in own.items()}, "warnings": warnings}


def mean_over_seeds(rows: Sequence[Mapping[str, Any]], group: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
    """Average ``values`` over the rows that share the ``group`` keys (e.g. strategy, lambda),
    with their standard deviation (ddof 0) and the number of seeds. Non-finite values are
    skipped and counted."""
    buckets: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        buckets.setdefault(tuple(row[k] for k in group), []).append(row)
    out = []
    for key, members in buckets.items():
        item: dict[str, Any] = dict(zip(group, key))
        item["n"] = len(members)
        for name in values:
            vals = np.array([float(m[name]) for m in members if m.get(name) is not None and math.isfinite(float(m[name]))])
            item[name] = float(vals.mean()) if vals.size else None
            item[f"{name}_std"] = float(vals.std()) if vals.size else None
            if vals.size < len(members):
                item[f"{name}_missing"] = len(members) - int(vals.size)
        out.append(item)
    return out
