import math

import pytest

from ssae_utils.scorecard import result_claims as rc
from ssae_utils.scorecard.claims import CLAIMS, score_claims

TERM = "Dense+TERM t=500"  # any "+TERM" label: the first one is judged


def _tail(dense=(460, 240), term=(247, 191), n=3753, counts_term=None, counts_dense=None):
    summary = {rc.DENSE_LABEL: {"only_ssae": dense[0], "only_baseline": dense[1], "both": 0},
               TERM: {"only_ssae": term[0], "only_baseline": term[1], "both": 0}}
    per = {rc.DENSE_LABEL: {"activation_counts": counts_dense or [10, 20, 30, 40], "activation_summary": {"l0": 100.0}},
           TERM: {"activation_counts": counts_term or [15, 25, 35, 45], "activation_summary": {"l0": 101.0}}}
    return {"tail_tokens": {"n_tail_types": n, "max_count": 4, "baseline": "General SSAE", "summary": summary},
            "per_model": per, "activation_sample": {"tokens": 1000}}


def test_tail_coverage_is_a_paired_proportion_with_mcnemar_error():
    e = rc.tail_coverage_evidence(_tail())
    assert e.value == pytest.approx((460 - 240) / 3753) and e.se == pytest.approx(math.sqrt(700) / 3753)
    assert e.verdict == "reproduced"
    assert rc.tail_coverage_evidence(_tail(dense=(240, 460))).verdict == "not reproduced"
    assert rc.tail_coverage_evidence(_tail(dense=(250, 240))).verdict == "inconclusive"


def test_term_tail_and_breadth():
    tail = rc.term_tail_evidence(_tail())
    assert tail.value == pytest.approx((56 - 220) / 3753) and tail.verdict == "not reproduced"
    breadth = rc.breadth_evidence(_tail(counts_term=[15] * 50, counts_dense=[10] * 50))
    assert breadth.value == 5 and breadth.verdict == "inconclusive"      # no spread at all: SE 0, no verdict
    dense = list(range(200))
    spread = [10 + 5 * math.sin(i) for i in range(200)]          # differences around +10
    broader = rc.breadth_evidence(_tail(counts_term=[c + d for c, d in zip(dense, spread)], counts_dense=dense))
    assert broader.value == pytest.approx(sorted(spread)[99] / 2 + sorted(spread)[100] / 2)
    assert 0 < broader.se < 2 and broader.verdict == "reproduced"
    narrower = rc.breadth_evidence(_tail(counts_term=[c - d for c, d in zip(dense, spread)], counts_dense=dense))
    assert narrower.verdict == "not reproduced"


def test_autointerp_needs_claude_for_a_verdict():
    summary = {m: {"mean": v, "ci_low": v - 0.05, "ci_high": v + 0.05, "n": 20} for m, v in [(TERM, 0.8), (rc.DENSE_LABEL, 0.5)]}
    offline = rc.autointerp_evidence({"mode": "offline", "summary": summary})
    assert offline.verdict == "inconclusive" and "offline" in offline.note and offline.value == pytest.approx(0.3)
    assert rc.autointerp_evidence({"mode": "claude", "summary": summary}).verdict == "reproduced"


def test_shift_uses_the_smallest_effect_of_interest():
    def table(ssae, gsae, sd=0.01, n=9):
        return {"table": [{"row": "SSAE SHIFT", "n_runs": n, "worst_group_acc": {"mean": ssae, "std": sd, "n": n}},
                          {"row": "GSAE SHIFT", "n_runs": n, "worst_group_acc": {"mean": gsae, "std": sd, "n": n}},
                          {"row": "Original", "n_runs": n, "gender_acc": {"mean": 0.52}}]}
    flat = rc.shift_evidence(table(0.936, 0.936))
    assert flat.verdict == "not reproduced" and "barely uses gender" in flat.note
    assert rc.shift_evidence(table(0.885, 0.760)).verdict == "reproduced"


def test_every_claim_is_scored_and_missing_results_name_the_notebook():
    rows = score_claims({})
    assert [r["claim"] for r in rows] == [f"C{i}" for i in range(1, 10)] == list(CLAIMS)
    # the headline is the four-outcome verdict: no results, untestable (the k-sigma one: inconclusive)
    assert all(r["verdict"] == "untestable" and r["legacy_verdict"] == "inconclusive" and "run notebook" in r["note"]
               for r in rows)
    assert all(not p["ok"] and "exists" in p["name"] for r in rows for s in r["stats"]["subtests"] for p in s["preconditions"])
    c6 = score_claims({"05_tail_tokens.json": _tail()})[5]
    assert c6["claim"] == "C6" and c6["verdict"] == c6["legacy_verdict"] == "reproduced" and c6["values"][0]["se"] > 0
    assert c6["stats"]["outcome"] == "reproduced" and c6["stats"]["subtests"][0]["interval"][0] > 0


def test_the_first_term_model_is_judged_whatever_its_tilt():
    assert rc.term_label(["GSAE", "Dense SSAE", "Dense+TERM t=1", "Dense+TERM t=3"]) == "Dense+TERM t=1"
    assert rc.term_label(["GSAE", "Dense SSAE"]) is None
    tail = _tail()
    for key in ("summary",):
        tail["tail_tokens"][key] = {k.replace("t=500", "t=1"): v for k, v in tail["tail_tokens"][key].items()}
    tail["per_model"] = {k.replace("t=500", "t=1"): v for k, v in tail["per_model"].items()}
    assert "TERM t=1 minus Dense" in rc.term_tail_evidence(tail).metric
    assert "TERM t=1 minus Dense" in rc.breadth_evidence(tail).metric
