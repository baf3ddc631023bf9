"""The four-outcome verdict rule, fixed before any run: the scorecard's headline verdict.

A claim is a conjunction of *sub-tests*; each predicts the sign of one effect (e.g. "Dense's
mean relative perplexity minus General's is negative"). Each sub-test has *preconditions*
(stated, checked, reported): the per-document evidence exists, every arm has at least two
seeds of its own (``SEEDS_PRECONDITION``: otherwise its training noise is unknown and is never
borrowed from another strategy), every curve covers the window, the original probe uses
gender (C9), the explanations come from an LLM (C8)... The rule, per sub-test:

* **untestable**: a precondition failed (no p-value; left out of the multiplicity family);
* otherwise a two-sided test of "effect = 0" (t with the estimate's Satterthwaite df; normal
  where the estimate's df is infinite: a count or bootstrap over many units), Holm step-down
  over the *family* at family-wise level ``ALPHA``:
  * **reproduced**: Holm rejects and the effect has the claimed sign (its interval at the
    Holm step level ``1 - alpha / (m - rank + 1)`` excludes 0 on the claimed side);
  * **contradicted**: Holm rejects and the effect has the opposite sign;
  * **inconclusive**: Holm does not reject; the minimum detectable effect at 80% power at the
    sub-test's Holm step level (t version, ``ssae_utils.stats.power``) is reported, so
    "inconclusive" says how large an effect could have gone unseen.

Combining sub-tests (claims are conjunctions): **contradicted** if any sub-test is
contradicted (a conjunction with a false part is false, whatever the other parts say); else
**untestable** if any is untestable; else **reproduced** if every one is reproduced; else
**inconclusive**. A claim with no sub-test is untestable.

The family: **one family, every testable sub-test of C1-C9** (``judge_family`` is called once
with all nine claims; ``ClaimResult.family_size`` is the same for every claim and counts the
testable sub-tests of the whole scorecard). The scorecard is read as one report ("which of the
paper's findings hold"), so its family-wise error rate is controlled over all of it, not per
claim: no claim gets a looser threshold for being judged on its own.

A sub-test is either *hierarchical* (``SubTest.hierarchical``: C1-C5 and C7's perplexity, the
paired documents x training-seeds design of ``ssae_utils.stats.hierarchical``, with the seeds
and documents preconditions checked here) or states its own design and preconditions
(``ssae_utils.stats.result_tests``): C6-C8's counts and bootstraps over tail types, features or
explained features are conditional on the trained models (one training seed each), C9 crosses
probe seeds with SSAE selection seeds. Every sub-test says in ``SubTest.noise`` what its
interval speaks to and what it leaves out. A non-inferiority sub-test (C7: TERM's perplexity
within a margin of ERM's) is the same two-sided test of a shifted effect
(``TERM - margin x ERM``); "reproduced" is then a one-sided test at half its Holm step level.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, Sequence

from ssae_utils.stats.hierarchical import Estimate
from ssae_utils.stats.multiplicity import holm
from ssae_utils.stats.power import POWER, docs_for_target, mde

Outcome = Literal["reproduced", "contradicted", "inconclusive", "untestable"]
Sign = Literal["negative", "positive"]
ALPHA = 0.05
SEEDS_PRECONDITION = "every arm has >= 2 training seeds of its own (its seed variance is known)"
DOCS_PRECONDITION = "every split has >= 2 evaluation documents (its document variance is known)"

VERDICT_RULE = (
    f"per sub-test: untestable if a stated precondition fails; else a two-sided test of effect = 0 (t with "
    "Satterthwaite df; normal for counts and bootstraps over many units), Holm step-down over every testable "
    f"sub-test of C1-C9 as one family at family-wise alpha = {ALPHA:g}: reproduced if rejected with the claimed "
    "sign, contradicted if rejected with the opposite sign, otherwise inconclusive with the minimum detectable "
    f"effect at {POWER:.0%} power at its Holm level (a non-inferiority sub-test tests the effect shifted by its "
    "margin). A claim is contradicted if any sub-test is; else untestable if any is; else reproduced if all are; "
    "else inconclusive. Each sub-test reports its effect, interval (at its Holm level), MDE, seeds, evaluation "
    "documents, preconditions and the noise its interval speaks to.")


@dataclass(frozen=True)
class Precondition:
    """A stated condition a sub-test needs; ``ok`` False makes it untestable."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class SubTest:
    """One measured effect with its claimed sign (``estimate`` None: it could not be measured,
    and a failed precondition must say why)."""

    name: str
    expected: Sign
    estimate: Estimate | None
    preconditions: tuple[Precondition, ...] = ()
    # the paired documents x seeds design (the seeds and documents preconditions apply); False:
    # a conditional sub-test over another unit (tail types, features...), see ``noise``
    hierarchical: bool = True
    noise: str = ""                    # what the interval speaks to, and what it leaves out
    # a report beside the effect, not part of the verdict (e.g. each arm's gap to the GSAE)
    vs_gsae: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()        # flagged findings (e.g. a damaged baseline); no verdict change

    def checks(self) -> tuple[Precondition, ...]:
        """The stated preconditions plus the ones every estimate needs."""
        out = list(self.preconditions)
        if self.estimate is None:
            if all(p.ok for p in out):
                out.append(Precondition("the effect could be measured", False, "no estimate"))
            return tuple(out)
        e = self.estimate
        if self.hierarchical:
            out.append(Precondition(SEEDS_PRECONDITION, e.seed_variance_known,
                                    "" if e.seed_variance_known else f"one seed: {', '.join(e.unknown_seed_variance)}"))
            docs_ok = not e.unknown_doc_variance
            out.append(Precondition(DOCS_PRECONDITION, docs_ok,
                                    "" if docs_ok else f"one document: {', '.join(e.unknown_doc_variance)}"))
        finite = math.isfinite(e.effect) and math.isfinite(e.se) and e.se > 0
        out.append(Precondition("a finite effect with a positive standard error", finite, "" if finite else f"se={e.se}"))
        return tuple(out)


@dataclass(frozen=True)
class SubTestResult:
    """A sub-test's verdict and everything it rests on."""

    name: str
    expected: Sign
    outcome: Outcome
    effect: float | None
    se: float | None
    df: float | None
    p: float | None
    p_adjusted: float | None          # Holm
    level: float | None               # 1 - the Holm step alpha
    interval: tuple[float, float] | None   # at ``level``
    mde: float | None                 # at 80% power, two-sided at the Holm step alpha, t version
    n_seeds: dict[str, int] = field(default_factory=dict)
    n_docs: dict[str, int] = field(default_factory=dict)
    preconditions: tuple[Precondition, ...] = ()
    estimate: dict[str, Any] | None = None
    noise: str = ""
    vs_gsae: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    # documents per split an MDE of 2% would need (``power.docs_for_target``; hierarchical, testable)
    power_plan: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        # JSON has no infinity: an infinite df (a normal test) is written as null, with the distribution named
        out["distribution"] = None if self.df is None else ("t" if math.isfinite(self.df) else "normal")
        out["df"] = finite_or_none(self.df)
        out["notes"] = list(self.notes)
        return out


def finite_or_none(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict (``combine``) and its sub-tests."""

    claim: str
    outcome: Outcome
    subtests: tuple[SubTestResult, ...]
    family_size: int
    alpha: float

    @property
    def notes(self) -> list[str]:
        return [n for s in self.subtests for n in s.notes]

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "outcome": self.outcome, "family_size": self.family_size, "alpha": self.alpha,
                "notes": self.notes, "subtests": [s.to_dict() for s in self.subtests]}


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """A claim from its sub-tests' outcomes (module docstring)."""
    if not outcomes or "untestable" in outcomes and "contradicted" not in outcomes:
        return "untestable"
    if "contradicted" in outcomes:
        return "contradicted"
    if all(o == "reproduced" for o in outcomes):
        return "reproduced"
    return "inconclusive"


def judge_family(claims: Mapping[str, Sequence[SubTest]], alpha: float = ALPHA,
                 power: float = POWER) -> dict[str, ClaimResult]:
    """Every claim's verdict, with Holm's correction over all their testable sub-tests."""
    checked = {(c, i): t.checks() for c, tests in claims.items() for i, t in enumerate(tests)}
    testable = {k: claims[k[0]][k[1]] for k, pre in checked.items() if all(p.ok for p in pre)}
    family = holm({f"{c}#{i}": t.estimate.p_value() for (c, i), t in testable.items()}, alpha) if testable else {}
    out = {}
    for c, tests in claims.items():
        results = []
        for i, t in enumerate(tests):
            pre, e = checked[(c, i)], t.estimate
            base = dict(name=t.name, expected=t.expected, n_seeds=dict(e.n_seeds) if e else {},
                        n_docs=dict(e.n_docs) if e else {}, preconditions=pre, estimate=e.to_dict() if e else None,
                        noise=t.noise, vs_gsae=dict(t.vs_gsae) if t.vs_gsae is not None else None, notes=tuple(t.notes))
            if (c, i) not in testable:
                results.append(SubTestResult(outcome="untestable", effect=e.effect if e else None, se=e.se if e else None,
                                             df=e.df if e else None, p=None, p_adjusted=None, level=None, interval=None,
                                             mde=None, **base))
                continue
            h = family[f"{c}#{i}"]
            level = 1 - h.step_alpha
            claimed = e.effect < 0 if t.expected == "negative" else e.effect > 0
            outcome: Outcome = ("reproduced" if claimed else "contradicted") if h.rejected else "inconclusive"
            results.append(SubTestResult(outcome=outcome, effect=e.effect, se=e.se, df=e.df, p=h.p, p_adjusted=h.p_adjusted,
                                         level=level, interval=e.interval(level),
                                         mde=mde(e.se, h.step_alpha, power, e.df),
                                         power_plan=docs_for_target(e, alpha=h.step_alpha, power=power) if t.hierarchical else None,
                                         **base))
        out[c] = ClaimResult(c, combine([r.outcome for r in results]), tuple(results), len(family), alpha)
    return out
