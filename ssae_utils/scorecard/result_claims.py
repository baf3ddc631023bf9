"""Claims C6-C9 and the feature half of C7, from notebooks 05, 06 and 07's results: the
*legacy* k-sigma evidence (``legacy_verdict`` in 08_scorecard.json). The headline four-outcome
verdicts of the same claims, from the same evidence, are ``ssae_utils.stats.result_tests``.

Noise, per claim (each is the uncertainty that the saved results can speak to):
- C6 / C7 tail coverage: which rare token types happen to occur in the test split. Two
  models are compared on the same tail types as paired proportions (McNemar): with b types
  covered only by A and c only by B out of n, the gap (b - c) / n has SE sqrt(b + c) / n.
- C7 breadth: the median over features of the paired difference in activation counts
  (the SSAEs keep the GSAE's feature indices), with a bootstrap SE over features.
- C8: the bootstrap CIs of mean F1 per model (SE = CI width / 3.92).
- C9: the seed spread of worst-group accuracy (SE of a mean over runs = SD / sqrt(n)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ssae_utils.scorecard.verdict import Evidence, judge
from ssae_utils.stats.result_tests import DENSE_LABEL, term_label

# C9: the paper reports +12.5 points of worst-group accuracy; a gain below 3 points
# (a quarter of that) is not the claimed effect.
C9_MIN_EFFECT = 0.03


def _short(label: str) -> str:
    return label.split("+", 1)[-1]  # "Dense+TERM t=500" -> "TERM t=500"


def _net_tail_gain(summary: dict[str, Any], label: str, n: int) -> tuple[float, float]:
    s = summary[label]
    b, c = s["only_ssae"], s["only_baseline"]
    return (b - c) / n, math.sqrt(b + c) / n


def tail_coverage_evidence(tail: dict[str, Any]) -> Evidence:
    """C6: the Dense SSAE covers more tail types than the general-data baseline."""
    t = tail["tail_tokens"]
    n = t["n_tail_types"]
    gap, se = _net_tail_gain(t["summary"], DENSE_LABEL, n)
    return Evidence(f"tail types (<= {t['max_count']} occurrences, n={n}): share covered only by Dense minus only by "
                    f"{t['baseline']}", gap, se, "positive", judge(gap, se, "positive"),
                    {"counts": t["summary"][DENSE_LABEL], "n_tail_types": n})


def term_tail_evidence(tail: dict[str, Any]) -> Evidence:
    """C7 (tail): TERM's net tail gain over the baseline exceeds Dense ERM's."""
    t = tail["tail_tokens"]
    n = t["n_tail_types"]
    term = term_label(t["summary"])
    if term is None:
        return Evidence("TERM vs Dense tail coverage", None, None, "positive", "inconclusive", note="no TERM model in 05")
    g_term, se_term = _net_tail_gain(t["summary"], term, n)
    g_dense, se_dense = _net_tail_gain(t["summary"], DENSE_LABEL, n)
    gap, se = g_term - g_dense, math.sqrt(se_term ** 2 + se_dense ** 2)   # ignores their correlation: conservative
    return Evidence(f"net tail gain over the baseline, {_short(term)} minus Dense ERM", gap, se, "positive",
                    judge(gap, se, "positive"), {"term": t["summary"][term], "dense": t["summary"][DENSE_LABEL]})


def breadth_evidence(tail: dict[str, Any], n_boot: int = 2000, seed: int = 0) -> Evidence:
    """C7 (breadth): TERM's features fire more broadly than Dense ERM's: the median of the
    per-feature activation-count differences (same feature index) is positive."""
    per = tail["per_model"]
    term = term_label(per)
    if term is None:
        return Evidence("TERM vs Dense feature breadth", None, None, "positive", "inconclusive", note="no TERM model in 05")
    diff = np.asarray(per[term]["activation_counts"], float) - np.asarray(per[DENSE_LABEL]["activation_counts"], float)
    rng = np.random.default_rng(seed)
    boots = np.median(diff[rng.integers(0, len(diff), (n_boot, len(diff)))], axis=1)
    gap, se = float(np.median(diff)), float(boots.std(ddof=1))
    return Evidence(f"median per-feature activation count, {_short(term)} minus Dense ERM (same feature)", gap, se, "positive",
                    judge(gap, se, "positive"),
                    {"l0_term": per[term]["activation_summary"]["l0"], "l0_dense": per[DENSE_LABEL]["activation_summary"]["l0"],
                     "tokens": tail["activation_sample"]["tokens"]})


def autointerp_evidence(autointerp: dict[str, Any]) -> Evidence:
    """C8: TERM's features get a higher mean F1 than Dense ERM's. With the offline explainer
    the gap is reported but no verdict is given: the claim is about an LLM's explanations."""
    s = autointerp["summary"]
    term = term_label(s)
    if term is None or DENSE_LABEL not in s:
        return Evidence("mean F1, TERM minus Dense", None, None, "positive", "inconclusive", note="models missing in 06")
    if any(s[m].get(k) is None for m in (term, DENSE_LABEL) for k in ("mean", "ci_low", "ci_high")):
        return Evidence("mean F1, TERM minus Dense", None, None, "positive", "inconclusive", note="no mean F1 or CI in 06")
    se = math.sqrt(sum(((s[m]["ci_high"] - s[m]["ci_low"]) / 3.92) ** 2 for m in (term, DENSE_LABEL)))
    gap = s[term]["mean"] - s[DENSE_LABEL]["mean"]
    offline = autointerp.get("mode") != "claude"
    verdict = "inconclusive" if offline else judge(gap, se, "positive")
    return Evidence(f"mean autointerp F1, {_short(term)} minus Dense ERM", gap, se, "positive", verdict,
                    {m: {k: s[m][k] for k in ("mean", "ci_low", "ci_high", "n")} for m in (term, DENSE_LABEL)} | {"mode": autointerp.get("mode")},
                    "measured with the offline explainer only (no ANTHROPIC_API_KEY): no verdict on an LLM claim" if offline else None)


def shift_evidence(bios: dict[str, Any]) -> Evidence:
    """C9: SSAE SHIFT beats GSAE SHIFT on worst-group accuracy (by at least C9_MIN_EFFECT)."""
    rows = {r["row"]: r for r in bios["table"]}
    if "SSAE SHIFT" not in rows or "GSAE SHIFT" not in rows:
        return Evidence("worst-group accuracy, SSAE SHIFT minus GSAE SHIFT", None, None, "positive", "inconclusive", note="rows missing in 07")
    a, b = rows["SSAE SHIFT"]["worst_group_acc"], rows["GSAE SHIFT"]["worst_group_acc"]
    se = math.sqrt((a["std"] ** 2) / a["n"] + (b["std"] ** 2) / b["n"])
    gap = a["mean"] - b["mean"]
    original = rows.get("Original", {}).get("gender_acc", {}).get("mean")
    return Evidence(f"worst-group accuracy, SSAE SHIFT minus GSAE SHIFT (claimed effect >= {C9_MIN_EFFECT})", gap, se, "positive",
                    judge(gap, se, "positive", min_effect=C9_MIN_EFFECT),
                    {"ssae": a, "gsae": b, "paper": {"gsae": 0.760, "ssae": 0.885}, "original_gender_acc": original},
                    None if original is None or abs(original - 0.5) > 0.05 else
                    f"the ambiguous probe barely uses gender here (gender accuracy {original:.3f}): SHIFT has little to remove")
