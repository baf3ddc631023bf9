"""Stage 08: the claims scorecard, from the saved results of notebooks 04-07 only.

Writes ``results/<profile>/08_scorecard.json``: the verdict rule, and one row per claim
(C1-C9) with its verdict, the metric(s), the measured values with their standard errors, and
the seeds behind them; C1-C5 also a four-outcome verdict (``stats``, from 03_finetune.json's
per-document CE: ``ssae_utils.stats``). Nothing here trains or evaluates a model, and nothing is tuned to a
verdict: the rule is fixed in ``ssae_utils.scorecard.verdict``.
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


def run_scorecard(cfg: ProfileConfig) -> ScorecardResults:
    results = load_results(cfg)
    out = ScorecardResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "sources": sorted(results),
        "verdict_rule": (f"a gap in the claimed direction beyond {verdict.K_SIGMA:g} standard errors: reproduced; beyond "
                         f"{verdict.K_SIGMA:g} in the other direction (or, where a smallest effect of interest is set, "
                         "too small to reach it): not reproduced; otherwise, or without a noise estimate: inconclusive"),
        "claims": score_claims(results),
        "stats_rule": VERDICT_RULE,
    })
    write_results(cfg, out)
    return out


def scorecard_table(scorecard: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for display: claim, verdict, and each piece of evidence as value ± SE."""
    def fmt(v: dict[str, Any]) -> str:
        if v["value"] is None:
            return "n/a"
        se = f" ± {v['se']:.3g}" if v["se"] is not None else ""
        return f"{v['value']:.3g}{se} ({v['verdict']})"

    return [{"claim": c["claim"], "verdict": c["verdict"], "stats": (c.get("stats") or {}).get("outcome", "-"), "text": c["text"],
             "evidence": "; ".join(fmt(v) for v in c["values"] or []), "metric": c["metric"], "seeds": c["seeds"],
             "note": c["note"]} for c in scorecard["claims"]]
