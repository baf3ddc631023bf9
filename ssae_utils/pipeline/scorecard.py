"""Stage 08: the claims scorecard, from the saved results of notebooks 04-07 only.

Writes ``results/<profile>/08_scorecard.json``: the verdict rule, and one row per claim
(C1-C9) with its four-outcome verdict (``verdict``; its sub-tests under ``stats``: effect,
interval, MDE, seeds, evaluation documents, preconditions; ``ssae_utils.stats``), and the old
k-sigma verdict beside it (``legacy_verdict``, with its metric(s), measured values and standard
errors, and the seeds behind them; ``ssae_utils.scorecard.verdict``). Nothing here trains or
evaluates a model, and nothing is tuned to a verdict: both rules are fixed before any run.
"""

from __future__ import annotations

from typing import Any

from ssae_utils.config import ProfileConfig
from ssae_utils.results import BY_FILE, FINETUNE_FILE, ScorecardResults, read_stage, results_path, write_results
from ssae_utils.scorecard import verdict
from ssae_utils.scorecard.claims import CLAIMS, score_claims
from ssae_utils.stats.verdict import VERDICT_RULE

RESULTS_FILE = ScorecardResults.FILE


def load_results(cfg: ProfileConfig) -> dict[str, dict[str, Any]]:
    """Every results file a claim needs that exists for this profile, read (and checked)
    through its schema; the claims get them as the JSON dicts they are."""
    # 03_finetune.json too: its per-document CE is the evidence of C1-C5's four-outcome verdicts
    names = sorted({f for c in CLAIMS.values() for f in c.needs} | {FINETUNE_FILE})
    return {name: read_stage(cfg, BY_FILE[name]).to_dict() for name in names
            if results_path(cfg.name, name).exists()}


LEGACY_VERDICT_RULE = (
    f"a gap in the claimed direction beyond {verdict.K_SIGMA:g} standard errors: reproduced; beyond "
    f"{verdict.K_SIGMA:g} in the other direction (or, where a smallest effect of interest is set, "
    "too small to reach it): not reproduced; otherwise, or without a noise estimate: inconclusive")


def run_scorecard(cfg: ProfileConfig) -> ScorecardResults:
    results = load_results(cfg)
    out = ScorecardResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "sources": sorted(results),
        "verdict_rule": VERDICT_RULE,
        "legacy_verdict_rule": LEGACY_VERDICT_RULE,
        "claims": score_claims(results),
    })
    write_results(cfg, out)
    return out


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3g}"


def _subtest_cells(s: dict[str, Any]) -> dict[str, str]:
    """One sub-test as text: outcome, effect, interval (with its level), MDE."""
    failed = [p["name"] for p in s.get("preconditions", []) if not p["ok"]]
    interval = s.get("interval")
    level = s.get("level")
    return {"outcome": s["outcome"] + (f" ({'; '.join(failed)})" if failed else ""),
            "effect": _num(s.get("effect")),
            "interval": (f"[{interval[0]:+.3g}, {interval[1]:+.3g}]" + (f" ({level:.3g})" if level else "")) if interval else "-",
            "mde": f"{s['mde']:.3g}" if s.get("mde") is not None else "-"}


def scorecard_table(scorecard: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for display: claim, its four-outcome verdict, each sub-test's effect, interval
    and MDE (``; ``-joined when a claim has several), the legacy k-sigma verdict and evidence."""
    def fmt(v: dict[str, Any]) -> str:
        if v["value"] is None:
            return "n/a"
        se = f" ± {v['se']:.3g}" if v["se"] is not None else ""
        return f"{v['value']:.3g}{se} ({v['verdict']})"

    rows = []
    for c in scorecard["claims"]:
        subs = [_subtest_cells(s) for s in (c.get("stats") or {}).get("subtests", [])]
        join = lambda key: "; ".join(s[key] for s in subs) or "-"   # noqa: E731
        rows.append({"claim": c["claim"], "verdict": c["verdict"], "text": c["text"],
                     "subtests": "; ".join(s["name"] for s in (c.get("stats") or {}).get("subtests", [])) or "-",
                     "outcomes": join("outcome"), "effect": join("effect"), "interval": join("interval"), "mde": join("mde"),
                     "legacy_verdict": c.get("legacy_verdict", "-"),
                     "evidence": "; ".join(fmt(v) for v in c["values"] or []), "metric": c["metric"], "seeds": c["seeds"],
                     "note": c["note"]})
    return rows
