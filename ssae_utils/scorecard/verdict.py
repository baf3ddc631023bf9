"""Turning a measured gap and its noise into a verdict.

A claim predicts the sign of a gap (for example "Dense has a lower patched perplexity than
the general baseline": gap = Dense - General < 0). The gap is compared with its standard
error: beyond ``k`` standard errors in the predicted direction the claim is *reproduced*,
beyond ``k`` in the other direction it is *not reproduced*, and in between it is
*inconclusive* (the spread is too wide to tell). Without any estimate of the noise (a single
seed everywhere) no verdict can be given: *inconclusive*, and the scorecard says why.

The verdict rule is fixed before looking at the results and is the same for every claim;
nothing here is tuned to make a claim pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

Verdict = Literal["reproduced", "not reproduced", "inconclusive"]
K_SIGMA = 2.0  # about a 95% two-sided band for a normal estimate


@dataclass
class Evidence:
    """One measured comparison behind a verdict."""

    metric: str                 # what was measured, in words
    value: float | None         # the gap (or the measured quantity)
    se: float | None            # its standard error (None: unknown)
    expected: Literal["negative", "positive"]  # the sign the claim predicts
    verdict: Verdict
    values: dict[str, Any] = field(default_factory=dict)   # the numbers the gap comes from
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(gap: float | None, se: float | None, expected: Literal["negative", "positive"], k: float = K_SIGMA,
          min_effect: float | None = None) -> Verdict:
    """Verdict for one gap: its sign against ``expected``, beyond ``k`` standard errors.

    ``min_effect`` (optional, in the gap's units): the smallest effect the claim is about.
    When even the upper end of the band (gap + k*se in the predicted direction) stays below
    it, the effect is too small to be the claimed one: *not reproduced* (an equivalence test).
    """
    if gap is None or not math.isfinite(gap) or se is None or not math.isfinite(se) or se <= 0:
        return "inconclusive"
    signed = gap if expected == "positive" else -gap
    if signed < -k * se or (min_effect is not None and signed + k * se < min_effect):
        return "not reproduced"
    if signed > k * se:
        return "reproduced"
    return "inconclusive"


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """A claim made of several comparisons: reproduced only if all are; not reproduced if
    some fail and none passes; otherwise inconclusive (mixed or unclear evidence)."""
    if not verdicts:
        return "inconclusive"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts) and not any(v == "reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


def se_of_difference(sigma: float | None, n_a: int, n_b: int) -> float | None:
    """Standard error of mean_a - mean_b when each is a mean of n independent seeds of
    standard deviation ``sigma``."""
    if sigma is None or not math.isfinite(sigma) or n_a < 1 or n_b < 1:
        return None
    return sigma * math.sqrt(1.0 / n_a + 1.0 / n_b)
