"""Power: the minimum detectable effect (MDE) of a paired comparison, and the documents it takes.

A comparison of two strategies on the same ``n_docs`` evaluation documents, each strategy with
``n_seeds`` of its own training seeds, has (``ssae_utils.stats.hierarchical``)::

    SE^2 = doc_var / n_docs + seed_var_a / n_seeds_a + seed_var_b / n_seeds_b

``doc_var``: the variance over documents of the paired, seed-averaged per-document influence
(``zeta`` in ``hierarchical``; ``V_doc = doc_var / n_docs``); ``seed_var_*``: each strategy's
seed variance net of evaluation noise. A two-sided test at level ``alpha`` (already corrected
for multiplicity, e.g. Holm's smallest step ``alpha / m``) detects a true effect ``delta`` with
probability ``power`` when::

    normal:  MDE = (z_{1 - alpha/2} + z_{power}) SE
    t:       MDE = (t_{nu, 1 - alpha/2} + t_{nu, power}) SE   (nu: Satterthwaite df of SE^2)

(the usual approximation that ignores the far rejection tail). ``docs_for_mde`` inverts the
formula for ``n_docs``; the seed terms set a floor no number of documents can go below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps

from ssae_utils.stats.hierarchical import Estimate, satterthwaite, t_quantile

POWER = 0.8


@dataclass(frozen=True)
class Design:
    """The noise of one comparison: per-document variance and documents; each arm's seed
    variance and seeds (``None`` variance: unknown, e.g. one seed)."""

    doc_var: float
    n_docs: int
    seed_var_a: float | None
    n_seeds_a: int
    seed_var_b: float | None
    n_seeds_b: int

    def parts(self, n_docs: int | None = None) -> list[tuple[float, float]]:
        """(variance, df) of each term of SE^2."""
        d = self.n_docs if n_docs is None else n_docs
        out = [(self.doc_var / d, d - 1)]
        for var, n in ((self.seed_var_a, self.n_seeds_a), (self.seed_var_b, self.n_seeds_b)):
            if var is None:
                raise ValueError("a seed variance is unknown (one seed?): no MDE without it")
            out.append((var / n, n - 1))
        return out

    def se(self, n_docs: int | None = None) -> float:
        return math.sqrt(sum(v for v, _ in self.parts(n_docs)))

    def df(self, n_docs: int | None = None) -> float:
        return satterthwaite(self.parts(n_docs))


def mde_multiplier(alpha: float, power: float = POWER, df: float = math.inf) -> float:
    """``q_{1 - alpha/2} + q_{power}`` for the normal (df = inf) or the t distribution."""
    return t_quantile(1 - alpha / 2, df) + t_quantile(power, df)


def mde(se: float, alpha: float = 0.05, power: float = POWER, df: float = math.inf) -> float:
    """The smallest true effect a two-sided level-``alpha`` test detects with ``power``."""
    return mde_multiplier(alpha, power, df) * se


def design_mde(design: Design, alpha: float = 0.05, power: float = POWER, t: bool = True) -> float:
    return mde(design.se(), alpha, power, design.df() if t else math.inf)


def power_at(effect: float, se: float, alpha: float = 0.05, df: float = math.inf) -> float:
    """Probability that a two-sided level-``alpha`` test rejects when the true effect is
    ``effect`` (both tails; normal, or central-t approximation for finite df)."""
    crit = t_quantile(1 - alpha / 2, df)
    dist = sps.norm if not math.isfinite(df) else sps.t(df)
    shift = abs(effect) / se
    return float(dist.sf(crit - shift) + dist.cdf(-crit - shift))


def docs_for_mde(design: Design, target: float, alpha: float = 0.05, power: float = POWER, t: bool = True,
                 max_docs: int = 10 ** 7) -> int | None:
    """The fewest documents with ``design_mde <= target`` (seeds as in ``design``); None when
    the seed terms alone make the MDE exceed ``target`` (more seeds are needed, not documents).

    Normal: ``n = ceil(doc_var / ((target / k)^2 - seed part))`` with ``k = z + z``; the t
    version starts there and steps up, since its multiplier shrinks as ``n`` grows."""
    if target <= 0:
        raise ValueError("the target MDE must be positive")
    seed_part = sum(v for v, _ in design.parts()[1:])
    k = mde_multiplier(alpha, power)
    room = (target / k) ** 2 - seed_part
    if room <= 0:
        return None
    n = max(2, math.ceil(design.doc_var / room))
    if not t:
        return n
    lo = n
    # the t multiplier is larger than the normal one: the answer is >= lo; double, then bisect
    hi = lo
    while mde(design.se(hi), alpha, power, design.df(hi)) > target:
        if hi >= max_docs:
            return None
        hi = min(max_docs, hi * 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if mde(design.se(mid), alpha, power, design.df(mid)) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


# The target: a minimum detectable effect of 2% relative perplexity (the effects of
# C1-C5 are differences of PPL / PPL_GSAE, so 0.02 in their units).
TARGET_MDE = 0.02


def docs_for_target(estimate: Estimate, target: float = TARGET_MDE, alpha: float = 0.05,
                    power: float = POWER) -> dict[str, object] | None:
    """How many evaluation documents per split the comparison behind ``estimate`` would need
    for an MDE of ``target`` (every split's documents scaled by one factor ``f``; its seeds
    as they are). ``SE^2(f) = sum_p V_doc,p / f + sum_a V_seed,a``, df by Satterthwaite with
    ``f n_p - 1`` per split. Unreachable when the seed terms alone exceed it: then more seeds
    are needed, not documents (``seed_floor_mde`` says how far). None without document terms."""
    docs = [(c, int(c.df) + 1) for c in estimate.components if c.source.startswith("documents ")]
    seeds = [c for c in estimate.components if not c.source.startswith("documents ")]
    if not docs:
        return None
    seed_var = sum(c.variance for c in seeds)

    def mde_at(f: float) -> float:
        parts = [(c.variance / f, f * n - 1) for c, n in docs] + [(c.variance, c.df) for c in seeds]
        se = math.sqrt(sum(v for v, _ in parts))
        return mde(se, alpha, power, satterthwaite(parts))

    floor = mde(math.sqrt(seed_var), alpha, power, satterthwaite([(c.variance, c.df) for c in seeds])) if seed_var > 0 else 0.0
    out: dict[str, object] = {"target_mde": target, "alpha": alpha, "power": power, "seed_floor_mde": floor,
                              "docs_now": {c.source.removeprefix("documents "): n for c, n in docs}}
    if floor >= target:
        return {**out, "reachable": False, "factor": None, "docs_needed": None}
    lo, hi = 1e-3, 1.0
    while mde_at(hi) > target:
        hi *= 2
        if hi > 1e9:
            return {**out, "reachable": False, "factor": None, "docs_needed": None}
    for _ in range(60):          # bisection on the continuous factor
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if mde_at(mid) <= target else (mid, hi)
    return {**out, "reachable": True, "factor": hi,
            "docs_needed": {c.source.removeprefix("documents "): max(2, math.ceil(hi * n)) for c, n in docs}}
