"""Paired, hierarchical uncertainty of a comparison between strategies: evaluation documents
x training seeds.

The design
----------
Stage 03 evaluates every SAE of a domain on the *same* evaluation documents of a split
(``FinetuneResults.eval_documents``) and keeps, per model, the CE summed over each document's
valid target tokens. Write, for split ``p`` (documents ``i = 1..D_p``, token counts ``T_i``,
``T = sum_i T_i``, ``Tbar = T / D_p``) and model ``k``::

    S_ki = CE summed over document i          m_k = sum_i S_ki / T      (the ``<split>_ce``)

Two sources of noise are sampled: the *training seeds* of each strategy (the SSAEs a strategy
would give with other seeds) and the *evaluation documents* (the documents a split happened
to draw). Seeds are nested in strategies (independent across strategies); documents are
crossed with every model (the same documents for every arm and every seed): a crossed
random-effects design.

Arms and their per-seed values
------------------------------
An *arm* is one strategy's seeds ``j = 1..n`` with a scalar value per seed ``g_j`` (its mean
CE, its relative perplexity ``exp(m_j - m_GSAE)``, a mean height of its relative-perplexity
curve over an L0 window, a test-vs-OOD difference...) and, per split, the *influence* of every
document on it, ``phi_jpi``: the first-order change of ``g_j`` when the documents are
reweighted (the delta method), scaled so that a document bootstrap changes ``g_j`` by about
``(1/D_p) sum_i (k_i - 1) phi_jpi`` for resampling multiplicities ``k_i``. For a mean CE (a
ratio of sums) ``phi_ji = (S_ji - m_j T_i) / Tbar``, which sums to 0 over documents; a
function ``g = f(m_1, ..., m_K)`` of several models' mean CEs on the same documents has
``phi = sum_k (df/dm_k) phi_k`` (``relative_ppl``: ``y = exp(m - m_G)``,
``phi_y = y (phi_m - phi_G)``); a fixed linear combination of arms on the same seeds (a
weighted average over lambdas with the AUC's trapezoid weights, an OOD minus test
difference paired by seed) combines values and influences with the same weights.

The estimator
-------------
A contrast ``Delta = sum_a c_a gbar_a`` of arms ``a`` (``gbar_a``: the mean over the arm's
``n_a`` seeds; e.g. ``c = (+1, -1)`` for "A minus B") is estimated by ``Delta_hat`` = the
same combination of the measured values. Its variance is estimated as::

    V = sum_p V_doc,p + sum_a c_a^2 sigma2_a / n_a

    V_doc,p  = sum_i zeta_pi^2 / (D_p (D_p - 1)),   zeta_pi = sum_a c_a mean_j phi_a,jpi
               (the paired document term: the arms' seed-averaged influences are combined
               *per document* before squaring, so document difficulty shared by both arms
               cancels, as it does in Delta_hat; df D_p - 1)
    sigma2_a = max(0, s2_a - e2_a)   (the arm's OWN seed variance, net of evaluation noise)
    s2_a     = sum_j (g_aj - gbar_a)^2 / (n_a - 1)
    e2_a     = sum_p sum_j sum_i (phi_a,jpi - mean_j phi_a,jpi)^2 / ((n_a - 1)(D_p - 1) D_p)

``s2_a`` (seed-to-seed variance on these documents) also holds the seed x document
interaction, whose share of ``Var(Delta_hat)`` is already in ``V_doc`` (via the
seed-averaged influence); ``e2_a`` is its two-way-ANOVA residual mean square divided by
``D_p``, so ``V`` is the unbiased crossed-design variance (MS_seeds + MS_docs - MS_residual)
/ (n D) in the equal-weight case, with the seed component truncated at 0. The interval is
``Delta_hat +- t_{nu, 1 - alpha/2} sqrt(V)`` with Welch-Satterthwaite degrees of freedom::

    nu = V^2 / (sum_p V_doc,p^2 / (D_p - 1) + sum_a (c_a^2 sigma2_a / n_a)^2 / (n_a - 1))

An arm with one seed has no seed variance of its own: it is *unknown*, never borrowed from
another strategy. The estimate then says so (``seed_variance_known = False``) and its ``V``
holds only the evaluation noise (and the other arms' seed noise): a lower bound, not an
interval a verdict may use (``ssae_utils.stats.verdict`` calls such a test untestable). The
same holds for a split with fewer than two evaluation documents (``unknown_doc_variance``).

Assumptions: seeds are independent draws within a strategy and independent across
strategies (two strategies' "seed 0" share no randomness that matters: if they did, a
positive correlation makes ``V`` conservative); documents are an i.i.d. sample from the
split's population and the same for all arms; L0 (the x axis of a curve, measured on other
tokens) is fixed; the delta method's linearisation holds (checked against a paired document
bootstrap, ``paired_bootstrap``, which needs no linearisation for the document term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats as sps


# ------------------------------------------------------------------ arms
@dataclass(frozen=True)
class Arm:
    """One strategy's seeds: a value per seed and, per split, every document's influence on it.

    ``values``: [n_seeds]; ``influence[split]``: [n_seeds, n_docs of the split], each row
    summing to ~0 (see the module docstring); ``seeds``: the training seeds, in row order.
    """

    values: np.ndarray
    influence: Mapping[str, np.ndarray]
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "values", values)
        infl = {p: np.asarray(v, dtype=np.float64) for p, v in self.influence.items()}
        for p, v in infl.items():
            if v.ndim != 2 or v.shape[0] != values.size:
                raise ValueError(f"influence[{p!r}] must be [n_seeds={values.size}, n_docs], got {v.shape}")
        object.__setattr__(self, "influence", infl)
        seeds = tuple(int(s) for s in self.seeds) or tuple(range(values.size))
        if len(seeds) != values.size:
            raise ValueError(f"{len(seeds)} seeds for {values.size} values")
        object.__setattr__(self, "seeds", seeds)

    @property
    def n_seeds(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def scaled(self, c: float) -> "Arm":
        return Arm(c * self.values, {p: c * v for p, v in self.influence.items()}, self.seeds)

    def plus(self, other: "Arm", c: float = 1.0) -> "Arm":
        """``self + c * other`` seed by seed (the same trained models on other quantities, e.g.
        OOD minus test: paired by seed, so their seeds must match)."""
        if self.seeds != other.seeds:
            raise ValueError(f"pairing by seed needs the same seeds, got {self.seeds} and {other.seeds}")
        infl = dict(self.influence)
        for p, v in other.influence.items():
            if p in infl and infl[p].shape != v.shape:
                raise ValueError(f"split {p!r}: influences of shapes {infl[p].shape} and {v.shape}")
            infl[p] = infl[p] + c * v if p in infl else c * v
        return Arm(self.values + c * other.values, infl, self.seeds)


def ce_arm(sums: np.ndarray, tokens: np.ndarray, split: str, seeds: Sequence[int] = ()) -> Arm:
    """An arm whose value is each seed's mean CE ``sum_i S_ji / sum_i T_i`` on ``split``.

    ``sums``: [n_seeds, n_docs] per-document CE sums; ``tokens``: [n_docs] token counts.
    Influence: ``(S_ji - m_j T_i) / Tbar`` (the ratio estimator's linearisation)."""
    s = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    t = np.asarray(tokens, dtype=np.float64).reshape(-1)
    if s.shape[1] != t.size:
        raise ValueError(f"sums have {s.shape[1]} documents, tokens {t.size}")
    if t.sum() <= 0:
        raise ValueError("no evaluation tokens")
    m = s.sum(1) / t.sum()
    return Arm(m, {split: (s - m[:, None] * t[None, :]) / t.mean()}, tuple(seeds))


def relative_ppl(arm: Arm, gsae: Arm) -> Arm:
    """``exp(m_j - m_GSAE)`` per seed: patched perplexity relative to the GSAE's on the same
    documents (``gsae``: one model, no seeds of its own; its influence is paired with the
    arm's document by document). Delta method: ``phi_y = y (phi_m - phi_G)``."""
    if gsae.n_seeds != 1:
        raise ValueError("the reference (GSAE) is one model")
    y = np.exp(arm.values - gsae.values[0])
    infl = {}
    for p, v in arm.influence.items():
        g = gsae.influence.get(p)
        if g is None:
            raise ValueError(f"the GSAE has no influence on split {p!r}")
        infl[p] = y[:, None] * (v - g[0][None, :])
    return Arm(y, infl, arm.seeds)


def weighted_sum(arms: Sequence[Arm], weights: Sequence[float]) -> Arm:
    """``sum_l w_l arm_l`` seed by seed (e.g. the lambdas of one curve with the trapezoid
    weights of its mean height over an L0 window: ``sae.pareto``'s AUC / width is linear in the
    heights at fixed L0)."""
    if len(arms) != len(weights) or not arms:
        raise ValueError("one weight per arm, and at least one arm")
    out = arms[0].scaled(float(weights[0]))
    for a, w in zip(arms[1:], weights[1:]):
        out = out.plus(a, float(w))
    return out


# ------------------------------------------------------------------ the estimate
@dataclass(frozen=True)
class Component:
    """One variance component of an estimate: its share of ``V``, its degrees of freedom."""

    source: str           # "documents <split>" or "seeds <arm>" (or the unit of a normal estimate)
    variance: float       # its contribution to V (None-free: 0 when truncated)
    df: float             # an int, or math.inf for a normal approximation
    detail: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """A contrast of arms, its standard error and degrees of freedom (see the module docstring).

    ``seed_variance_known`` is False when an arm has one seed: ``se`` then misses that arm's
    training noise and ``interval`` must not be used for a verdict."""

    effect: float
    se: float
    df: float
    components: tuple[Component, ...]
    n_seeds: dict[str, int]
    n_docs: dict[str, int]
    seed_variance_known: bool
    unknown_seed_variance: tuple[str, ...] = ()
    # splits with fewer than 2 evaluation documents: their document variance is unknown and
    # ``se`` misses it (like a one-seed arm: not an interval a verdict may use)
    unknown_doc_variance: tuple[str, ...] = ()

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """``effect +- t_{df, (1+level)/2} se`` (small-sample t quantile)."""
        half = t_quantile((1 + level) / 2, self.df) * self.se
        return self.effect - half, self.effect + half

    def p_value(self) -> float:
        """Two-sided p of H0: effect = 0 (t with ``df`` degrees of freedom)."""
        if not self.se > 0:
            return 0.0 if self.effect != 0 else 1.0
        z = abs(self.effect) / self.se
        if not math.isfinite(self.df) or self.df > 1e7:
            return float(2 * sps.norm.sf(z))
        return float(2 * sps.t.sf(z, self.df))

    def to_dict(self, level: float = 0.95) -> dict[str, object]:
        """JSON-shaped; an infinite df (a normal approximation) is written as null (JSON has no
        infinity) with ``distribution`` "normal"."""
        lo, hi = self.interval(level)
        return {"effect": self.effect, "se": self.se, "df": _finite(self.df),
                "distribution": "t" if math.isfinite(self.df) else "normal", "interval": [lo, hi], "level": level,
                "p": self.p_value(), "n_seeds": dict(self.n_seeds), "n_docs": dict(self.n_docs),
                "seed_variance_known": self.seed_variance_known,
                "unknown_seed_variance": list(self.unknown_seed_variance),
                "unknown_doc_variance": list(self.unknown_doc_variance),
                "components": [{"source": c.source, "variance": c.variance, "df": _finite(c.df), **c.detail}
                               for c in self.components]}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def normal_estimate(effect: float, se: float, source: str, n_seeds: Mapping[str, int] | None = None,
                    n_docs: Mapping[str, int] | None = None, detail: Mapping[str, float] | None = None) -> Estimate:
    """One normal-approximation statistic (a count, a bootstrap over many units): its effect
    and SE, infinite df, one variance component ``source`` (the sampling unit)."""
    return Estimate(float(effect), float(se), math.inf, (Component(source, float(se) ** 2, math.inf, dict(detail or {})),),
                    dict(n_seeds or {}), dict(n_docs or {}), True)


def t_quantile(q: float, df: float) -> float:
    """Student-t quantile; the normal one for infinite (or huge) df."""
    if not math.isfinite(df) or df > 1e7:
        return float(sps.norm.ppf(q))
    return float(sps.t.ppf(q, df))


def satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite df of a sum of variance estimates ``(v_k, df_k)``:
    ``(sum v_k)^2 / sum (v_k^2 / df_k)`` (components with v_k = 0 drop out)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / d for v, d in parts if v > 0 and d > 0)
    return total * total / denom if denom > 0 else math.inf


def contrast(arms: Mapping[str, Arm], coefs: Mapping[str, float]) -> Estimate:
    """``sum_a c_a gbar_a`` with its paired, hierarchical variance (module docstring)."""
    if set(coefs) - set(arms):
        raise KeyError(f"no arm {sorted(set(coefs) - set(arms))}")
    used = {a: arms[a] for a in coefs if coefs[a] != 0}
    if not used:
        raise ValueError("an empty contrast")
    effect = float(sum(coefs[a] * arm.mean for a, arm in used.items()))
    splits = sorted({p for arm in used.values() for p in arm.influence})
    comps: list[Component] = []
    n_docs: dict[str, int] = {}
    few_docs: list[str] = []
    for p in splits:
        shapes = {arm.influence[p].shape[1] for arm in used.values() if p in arm.influence}
        if len(shapes) != 1:
            raise ValueError(f"split {p!r}: the arms are on different documents ({sorted(shapes)}): no pairing")
        d = shapes.pop()
        n_docs[p] = d
        if d < 2:
            few_docs.append(p)
            continue
        zeta = sum(coefs[a] * arm.influence[p].mean(0) for a, arm in used.items() if p in arm.influence)
        comps.append(Component(f"documents {p}", float(np.sum(zeta ** 2) / (d * (d - 1))), d - 1))
    unknown = []
    for a, arm in used.items():
        n = arm.n_seeds
        if n < 2:
            unknown.append(a)
            continue
        s2 = float(arm.values.var(ddof=1))
        e2 = 0.0
        for p, phi in arm.influence.items():
            d = phi.shape[1]
            if d >= 2:
                e2 += float(np.sum((phi - phi.mean(0)) ** 2) / ((n - 1) * (d - 1) * d))
        sigma2 = max(0.0, s2 - e2)
        comps.append(Component(f"seeds {a}", coefs[a] ** 2 * sigma2 / n, n - 1,
                               {"seed_var_raw": s2, "eval_noise_in_seed_var": e2, "seed_var": sigma2}))
    v = sum(c.variance for c in comps)
    df = satterthwaite([(c.variance, c.df) for c in comps])
    return Estimate(effect, math.sqrt(v), df, tuple(comps), {a: arm.n_seeds for a, arm in used.items()}, n_docs,
                    not unknown, tuple(unknown), tuple(few_docs))


def difference(a: Arm, b: Arm, names: tuple[str, str] = ("a", "b")) -> Estimate:
    """``gbar_a - gbar_b``: two strategies on the same documents."""
    return contrast({names[0]: a, names[1]: b}, {names[0]: 1.0, names[1]: -1.0})


# ------------------------------------------------------------------ bootstrap (document term)
def paired_bootstrap(statistic: Callable[[Mapping[str, np.ndarray]], float], n_docs: Mapping[str, int],
                     n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Document-bootstrap variance of ``statistic`` per split (no linearisation).

    Each replicate draws ``D_p`` documents of split ``p`` with replacement, the *same* indices
    for every arm and every seed (the pairing), the other splits' documents as they are, and
    calls ``statistic({split: indices})``, which recomputes the contrast from the resampled
    documents with the seeds held fixed and averaged (e.g. from per-document sums:
    ``sum(S[idx]) / sum(T[idx])`` per model). Splits are independent samples, so each is
    resampled on its own. Returns {split: replicate variance (ddof 1) x ``D_p / (D_p - 1)``}
    (the bootstrap's plug-in variance is ``(D-1)/D`` of the unbiased one): the bootstrap
    version of ``V_doc,p``. ``combine_with_seeds`` adds the seed terms."""
    rng = np.random.default_rng(seed)
    out = {}
    for p, d in n_docs.items():
        if d < 2:
            raise ValueError(f"split {p!r}: fewer than 2 documents")
        identity = {q: np.arange(n) for q, n in n_docs.items()}
        reps = np.array([statistic({**identity, p: rng.integers(0, d, size=d)}) for _ in range(n_boot)])
        out[p] = float(reps.var(ddof=1) * d / (d - 1))
    return out


def combine_with_seeds(analytic: Estimate, doc_variance: Mapping[str, float]) -> Estimate:
    """``analytic`` with its per-split document components replaced by bootstrap ones
    (``paired_bootstrap``; same df, ``D_p - 1``); the seed components are kept."""
    comps = []
    for c in analytic.components:
        split = c.source.removeprefix("documents ") if c.source.startswith("documents ") else None
        if split is not None and split in doc_variance:
            comps.append(Component(f"documents {split} (bootstrap)", float(doc_variance[split]), c.df))
        else:
            comps.append(c)
    v = sum(c.variance for c in comps)
    return Estimate(analytic.effect, math.sqrt(v), satterthwaite([(c.variance, c.df) for c in comps]), tuple(comps),
                    analytic.n_seeds, analytic.n_docs, analytic.seed_variance_known, analytic.unknown_seed_variance,
                    analytic.unknown_doc_variance)
