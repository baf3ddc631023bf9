"""The paper's claims C1-C9 (listed, with where the paper makes each, in CLAIMS.md), each with the results it is judged on.

A registry: claim id -> what it says, which results files it needs, and the function that
turns them into evidence. Every claim gets the four-outcome verdict of ``ssae_utils.stats``
(``verdict``: reproduced / contradicted / inconclusive / untestable; its sub-tests, with effect,
interval, MDE, seeds, documents and preconditions, under ``stats``): C1-C5 and C7's perplexity
from 03_finetune.json's per-document CE (``stats.pareto``), C6-C9 and C7's tail and breadth
parts from 05-07's results (``stats.result_tests``), Holm over the sub-tests of all nine claims
together (one family). The old k-sigma verdict (``scorecard.verdict``) is kept beside it as
``legacy_verdict``, with its ``values`` and ``evidence``. A claim whose results are missing is
untestable (legacy: inconclusive) with a note naming the notebook to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ssae_utils.results import AUTOINTERP_FILE as AUTOINTERP
from ssae_utils.results import BIAS_IN_BIOS_FILE as BIOS
from ssae_utils.results import FINETUNE_FILE as FINETUNE
from ssae_utils.results import PARETO_FILE as PARETO
from ssae_utils.results import TAIL_TOKENS_FILE as TAIL
from ssae_utils.results import notebook_of
from ssae_utils.scorecard import pareto_claims as pc
from ssae_utils.scorecard import result_claims as rc
from ssae_utils.scorecard.verdict import Evidence, combine
from ssae_utils.stats.pareto import other_arm_ppl_tests, pareto_subtests, term_ppl_test
from ssae_utils.stats.result_tests import other_arm_subtests, result_subtests
from ssae_utils.stats.verdict import Precondition, SubTest, judge_family

Results = dict[str, dict[str, Any]]   # results file name -> its JSON


@dataclass(frozen=True)
class Claim:
    claim_id: str
    text: str
    needs: tuple[str, ...]
    evaluate: Callable[[Results], list[Evidence]]
    seeds: Callable[[Results], str]


def _pareto_seeds(r: Results) -> str:
    fig = r[PARETO]["figures"].get("fig1a", {})
    counts = {name: min((p.get("seeds", 1) for p in pts), default=0) for name, pts in fig.get("curves", {}).items()}
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) + " SSAE training seed(s) per curve"


def _term_features(autointerp: dict[str, Any]) -> Any:
    summary = autointerp["summary"]
    term = rc.term_label(summary)
    return summary[term].get("n", "?") if term else "?"


CLAIMS: dict[str, Claim] = {c.claim_id: c for c in [
    Claim("C1", "A Dense-retrieval SSAE beats the general-corpus baseline (lower patched perplexity at equal L0)",
          (PARETO,), lambda r: pc.claim_c1(r[PARETO]), _pareto_seeds),
    Claim("C2", "Dense retrieval beats BM25 in distribution", (PARETO,),
          lambda r: pc.claim_c2(r[PARETO]), _pareto_seeds),
    Claim("C3", "BM25 degrades out of distribution", (PARETO,),
          lambda r: pc.claim_c3(r[PARETO]), _pareto_seeds),
    Claim("C4", "TracIn reranking gives a marginal gain over its first-stage retriever", (PARETO,),
          lambda r: pc.claim_c4(r[PARETO]), _pareto_seeds),
    Claim("C5", "Seed-only multi-pass training helps in distribution but hurts out of distribution", (PARETO,),
          lambda r: pc.claim_c5(r[PARETO]), _pareto_seeds),
    Claim("C6", "SSAE features cover more tail tokens than the baseline's (logit lens)", (TAIL,),
          lambda r: [rc.tail_coverage_evidence(r[TAIL])], lambda r: "1 SSAE seed; noise: which tail types occur in the test split"),
    Claim("C7", "TERM yields more broadly activating features and more tail coverage, at comparable patched perplexity",
          (PARETO, TAIL),
          lambda r: [*pc.term_ppl_evidence(r[PARETO]), rc.term_tail_evidence(r[TAIL]),
                     rc.breadth_evidence(r[TAIL])],
          lambda r: "perplexity: " + _pareto_seeds(r) + "; features: 1 SSAE seed"),
    Claim("C8", "TERM features get higher autointerp F1", (AUTOINTERP,),
          lambda r: [rc.autointerp_evidence(r[AUTOINTERP])],
          lambda r: f"1 SSAE seed; {_term_features(r[AUTOINTERP])} features per model"),
    Claim("C9", "SSAE SHIFT beats GSAE SHIFT on worst-group accuracy (Bias in Bios)", (BIOS,),
          lambda r: [rc.shift_evidence(r[BIOS])],
          lambda r: "; ".join(f"{row['row']}: {row['n_runs']} runs" for row in r[BIOS]["table"]
                              if row["row"] in ("GSAE SHIFT", "SSAE SHIFT")) + " (probe seeds x selection seeds)"),
]}


def stats_subtests(results: Results) -> dict[str, list[SubTest]]:
    """Every claim's four-outcome sub-tests from the results there are (a missing file makes
    the sub-tests that need it untestable, naming the notebook)."""
    if PARETO in results:
        pareto = pareto_subtests(results.get(FINETUNE), results[PARETO])
        c7_ppl = term_ppl_test(results.get(FINETUNE), results[PARETO])
    else:
        missing = (Precondition(f"{PARETO} exists", False, f"run notebook {notebook_of(PARETO)} first"),)
        pareto = {c: [SubTest("mean PPL/GSAE gap", "negative", None, missing)] for c in ("C1", "C2", "C3", "C4", "C5")}
        c7_ppl = SubTest("mean PPL/GSAE, TERM vs Dense ERM (non-inferiority)", "negative", None, missing)
    rest = result_subtests(results.get(TAIL), results.get(AUTOINTERP), results.get(BIOS))
    rest["C7"] = [c7_ppl, *rest["C7"]]
    return {**pareto, **rest}


def other_arm_tests(results: Results) -> dict[str, list[SubTest]]:
    """C7's and C8's sub-tests for the TERM arms that are not judged (shown beside the verdict)."""
    out = other_arm_subtests(results.get(TAIL), results.get(AUTOINTERP))
    if PARETO in results:
        out["C7"] = [*other_arm_ppl_tests(results.get(FINETUNE), results[PARETO]), *out["C7"]]
    return out


def score_claims(results: Results) -> list[dict[str, Any]]:
    """One row per claim: {claim, text, verdict (four outcomes), legacy_verdict (k sigma),
    metric, values, seeds, evidence, note, stats}; C7 and C8 also ``other_arms``: the same
    sub-tests for every TERM arm but the judged one, judged as a Holm family of their own
    (beside the verdict, never part of it)."""
    judged = judge_family(stats_subtests(results))     # one Holm family: every testable sub-test of C1-C9
    beside = judge_family(other_arm_tests(results))
    rows = []
    for claim in CLAIMS.values():
        stats = judged[claim.claim_id]
        notes = stats.notes
        missing = [f for f in claim.needs if f not in results]
        if missing:
            notebooks = ", ".join(sorted({notebook_of(f) for f in missing}))
            rows.append({"claim": claim.claim_id, "text": claim.text, "verdict": stats.outcome, "legacy_verdict": "inconclusive",
                         "metric": None, "values": None, "seeds": None, "evidence": [],
                         "note": f"not measured: run notebook(s) {notebooks} first", "stats": stats.to_dict()})
            continue
        evidence = claim.evaluate(results)
        legacy_notes = [e.note for e in evidence if e.note]
        rows.append({"claim": claim.claim_id, "text": claim.text, "verdict": stats.outcome,
                     "legacy_verdict": combine([e.verdict for e in evidence]),
                     "metric": "; ".join(e.metric for e in evidence),
                     "values": [{"value": e.value, "se": e.se, "expected_sign": e.expected, "verdict": e.verdict} for e in evidence],
                     "seeds": claim.seeds(results), "evidence": [e.to_dict() for e in evidence],
                     "note": "; ".join(notes + legacy_notes) or None, "stats": stats.to_dict(),
                     **({"other_arms": beside[claim.claim_id].to_dict()} if beside.get(claim.claim_id) and
                        beside[claim.claim_id].subtests else {})})
    return rows
