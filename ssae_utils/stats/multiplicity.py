"""Multiple testing over a claim family: Holm's step-down procedure.

With m hypotheses and two-sided p-values sorted ``p_(1) <= ... <= p_(m)``, Holm rejects
``H_(1), ..., H_(k)`` for the largest k with ``p_(l) <= alpha / (m - l + 1)`` for every
``l <= k`` (it stops at the first failure). Equivalently the adjusted p-values::

    p~_(k) = max_{l <= k} min(1, (m - l + 1) p_(l))

and ``H_(k)`` is rejected iff ``p~_(k) <= alpha``. The family-wise error rate is at most
alpha under any dependence between the tests. The level a hypothesis is tested at is
``alpha / (m - rank + 1)`` (``step_alpha``); its interval at level ``1 - step_alpha`` excludes 0
iff its own p passes that step; Holm rejects it only if every earlier step passed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class HolmResult:
    """One hypothesis of a family after Holm's procedure."""

    name: str
    p: float            # raw two-sided p
    p_adjusted: float
    rank: int           # 1 = smallest p
    step_alpha: float   # alpha / (m - rank + 1): the level it is tested at
    rejected: bool


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order (ties keep their input order)."""
    m = len(p_values)
    for p in p_values:
        if not 0 <= p <= 1:
            raise ValueError(f"a p-value must lie in [0, 1], got {p}")
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p_values[i]))
        out[i] = running
    return out


def holm(p_values: Mapping[str, float], alpha: float = 0.05) -> dict[str, HolmResult]:
    """Holm's step-down over the family ``p_values`` (name -> raw p)."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    names = list(p_values)
    adjusted = holm_adjust([p_values[n] for n in names])
    order = sorted(range(len(names)), key=lambda i: p_values[names[i]])
    m = len(names)
    out = {}
    for rank, i in enumerate(order, start=1):
        n = names[i]
        out[n] = HolmResult(n, p_values[n], adjusted[i], rank, alpha / (m - rank + 1), adjusted[i] <= alpha)
    return out
