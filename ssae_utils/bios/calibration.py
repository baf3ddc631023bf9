"""Which probe (profession pair x layer) the study uses: a rule fixed before any SHIFT result.

SHIFT can only remove a gender signal the probe relies on. The precondition (Marks et al.:
their original probe scored ~0.87 gender accuracy on the balanced set) is measured on the
ORIGINAL, unablated probe: the fraction of balanced-test-set documents whose profession
prediction matches the ambiguous pairing of gender (0.5: the probe ignores gender).

Rule (pre-declared): among the candidates, in the order listed, pick the one with the highest
mean (over probe seeds) original-probe gender accuracy on the balanced test set; ties go to
the earlier candidate. No ablation, no SAE and no worst-group accuracy enters the choice.

Intervals: ``wilson_interval`` for one probe seed's gender accuracy (a binomial proportion
over the test biographies); the mean over seeds gets the stage's stratified bootstrap over
test biographies (``metrics.bootstrap_ci``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

RULE = ("highest mean (over probe seeds) gender accuracy of the original (unablated) profession probe on the "
        "balanced test set; ties go to the earlier candidate; decided before any ablation")


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (None for n == 0)."""
    if n <= 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pick_probe_candidate(gender_acc: Sequence[Sequence[float]]) -> int:
    """Index of the chosen candidate: ``gender_acc[k]`` holds candidate k's per-seed original
    gender accuracies; the highest mean wins, ties to the earlier candidate."""
    if not gender_acc or any(len(a) == 0 for a in gender_acc):
        raise ValueError("every candidate needs at least one gender accuracy")
    means = [sum(a) / len(a) for a in gender_acc]
    return max(range(len(means)), key=lambda k: (means[k], -k))


def selection_record(candidates: Sequence[dict[str, Any]], gender_acc: Sequence[Sequence[float]],
                     seeds: Sequence[int]) -> dict[str, Any]:
    """The record written to 07_bias_in_bios.json (``probe_selection``)."""
    pick = pick_probe_candidate(gender_acc)
    tried = [{**c, "gender_acc_per_seed": dict(zip(map(str, seeds), map(float, a))),
              "gender_acc_mean": float(sum(a) / len(a))} for c, a in zip(candidates, gender_acc)]
    return {"rule": RULE, "candidates": tried, "picked": {**candidates[pick]}, "picked_index": pick}
