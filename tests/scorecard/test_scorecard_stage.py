"""Stage 08 end to end: the four-outcome verdict is the headline of every claim, C1-C9 form one
Holm family, the display table shows outcome / effect / interval / MDE, the schema reads old and
new files, and the committed embedded results pass through stage 08 unchanged."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from ssae_utils.results import ResultsSchemaError, ScorecardResults
from ssae_utils.scorecard.claims import score_claims
from ssae_utils.stats.verdict import VERDICT_RULE
from tests.stats.synthetic import bios_results

EMBEDDED = Path(__file__).resolve().parents[2] / "results" / "embedded"
INPUTS = ("03_finetune.json", "04_pareto.json", "05_tail_tokens.json", "06_autointerp.json", "07_bias_in_bios.json")
OUTCOMES = {"reproduced", "contradicted", "inconclusive", "untestable"}
LEGACY = {"reproduced", "not reproduced", "inconclusive"}


@pytest.fixture(scope="module")
def embedded_inputs():
    return {name: json.loads((EMBEDDED / name).read_text(encoding="utf-8")) for name in INPUTS}


def test_every_claim_is_judged_in_one_holm_family(embedded_inputs):
    results = copy.deepcopy(embedded_inputs)
    # make C8 and C9 testable: an LLM's explanations, a probe that uses gender and SHIFT runs that differ
    results["06_autointerp.json"]["mode"] = "claude"
    bios = bios_results(0.1)
    results["07_bias_in_bios.json"]["runs"] = bios["runs"]
    original = next(r for r in results["07_bias_in_bios.json"]["table"] if r["row"] == "Original")
    original["gender_acc"] = {**original["gender_acc"], "mean": 0.8, "ci": [0.75, 0.85]}
    rows = score_claims(results)
    stats = {r["claim"]: r["stats"] for r in rows}
    testable = sum(1 for s in stats.values() for t in s["subtests"] if t["outcome"] != "untestable")
    assert {s["family_size"] for s in stats.values()} == {testable}
    assert testable >= 6          # C1, C6, C7 tail + breadth, C8, C9
    for r in rows:
        assert r["verdict"] == r["stats"]["outcome"] in OUTCOMES and r["legacy_verdict"] in LEGACY
    assert stats["C8"]["outcome"] != "untestable" and stats["C9"]["outcome"] == "reproduced"
    # Holm over the whole scorecard: the adjusted p of each testable sub-test counts every other claim's
    ps = sorted(t["p"] for s in stats.values() for t in s["subtests"] if t["p"] is not None)
    smallest = min((t for s in stats.values() for t in s["subtests"] if t["p"] is not None), key=lambda t: t["p"])
    assert smallest["p_adjusted"] == pytest.approx(min(1.0, len(ps) * ps[0]))
    assert "C1-C9 as one family" in VERDICT_RULE


def test_every_sub_test_carries_what_a_verdict_rests_on(embedded_inputs):
    rows = score_claims(embedded_inputs)
    for r in rows:
        for s in r["stats"]["subtests"]:
            assert {"effect", "se", "df", "distribution", "p", "p_adjusted", "interval", "level", "mde", "n_seeds", "n_docs",
                    "preconditions", "outcome", "noise", "vs_gsae", "notes"} <= set(s), (r["claim"], s["name"])
            assert s["preconditions"] and s["n_seeds"] and s["noise"], (r["claim"], s["name"])
            if s["outcome"] == "untestable":
                assert not all(p["ok"] for p in s["preconditions"])
            else:
                assert s["interval"] is not None and s["mde"] > 0
    json.dumps(rows, allow_nan=False)          # strict JSON: no Infinity / NaN anywhere


@pytest.fixture(scope="module")
def stage08_on_embedded(tmp_path_factory):
    """Stage 08 run on a copy of the committed 00-07 results (it reads nothing else)."""
    from ssae_utils.config import load_profile
    from ssae_utils.pipeline.scorecard import run_scorecard

    root = tmp_path_factory.mktemp("results")
    shutil.copytree(EMBEDDED, root / "embedded")
    (root / "embedded" / "08_scorecard.json").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSAE_RESULTS", str(root))
        run_scorecard(load_profile("embedded"))
    return json.loads((root / "embedded" / "08_scorecard.json").read_text(encoding="utf-8"))


def test_the_committed_embedded_results_pass_through_stage_08(stage08_on_embedded):
    out = stage08_on_embedded
    assert out["verdict_rule"] == VERDICT_RULE and "standard errors" in out["legacy_verdict_rule"]
    assert "stats_rule" not in out
    verdicts = {c["claim"]: c["verdict"] for c in out["claims"]}
    # the committed run (2026-12-02: 3 seeds for every strategy, >= 4,096 tokens per split)
    assert verdicts == {"C1": "reproduced", "C2": "inconclusive", "C3": "reproduced", "C4": "contradicted",
                        "C5": "inconclusive", "C6": "reproduced", "C7": "contradicted", "C8": "untestable",
                        "C9": "untestable"}
    c7 = next(c for c in out["claims"] if c["claim"] == "C7")
    assert len(c7["other_arms"]["subtests"]) == 15      # 5 other TERM arms x (PPL, tail, breadth)
    c9 = next(c for c in out["claims"] if c["claim"] == "C9")["stats"]["subtests"][0]
    gender = c9["preconditions"][0]
    bios = json.loads((EMBEDDED / "07_bias_in_bios.json").read_text(encoding="utf-8"))
    bound = next(r for r in bios["table"] if r["row"] == "Original")["gender_acc"]["ci"][0]
    assert bound <= 0.6     # the embedded stand-in's probe does not lean on gender
    assert not gender["ok"] and "recorded 95% CI" in gender["detail"] and f"{bound:.3f}" in gender["detail"]
    c8 = next(c for c in out["claims"] if c["claim"] == "C8")["stats"]["subtests"][0]
    assert [p["name"] for p in c8["preconditions"] if not p["ok"]] == ["the explanations come from an LLM (ANTHROPIC_API_KEY set)"]
    c1 = next(c for c in out["claims"] if c["claim"] == "C1")
    assert set(c1["stats"]["subtests"][0]["vs_gsae"]) == {"dense", "general"}
    assert ScorecardResults.from_dict(out).to_dict() == out


def test_the_committed_scorecard_is_what_stage_08_writes_now(stage08_on_embedded):
    committed = json.loads((EMBEDDED / "08_scorecard.json").read_text(encoding="utf-8"))
    assert committed["claims"] == stage08_on_embedded["claims"], \
        "results/embedded/08_scorecard.json is stale: rerun stage 08 on the committed 00-07 results"
    assert committed["verdict_rule"] == stage08_on_embedded["verdict_rule"]


def test_the_table_shows_outcome_effect_interval_and_mde(stage08_on_embedded):
    from ssae_utils.pipeline.scorecard import scorecard_table

    table = {r["claim"]: r for r in scorecard_table(stage08_on_embedded)}
    c1 = table["C1"]
    assert c1["verdict"] == "reproduced" and c1["outcomes"] == "reproduced"
    assert c1["effect"].startswith("-0.673") and c1["interval"].startswith("[-") and float(c1["mde"]) > 0
    assert table["C9"]["outcomes"].startswith("untestable (the original (unablated) probe uses gender")
    assert table["C9"]["legacy_verdict"] == "not reproduced"
    assert table["C7"]["effect"].count(";") == 2       # three sub-tests


def test_the_schema_reads_rows_before_and_after_the_headline():
    old_row = {"claim": "C1", "text": "t", "verdict": "not reproduced", "metric": "m", "values": [], "seeds": "s",
               "evidence": [], "note": None}
    base = {"schema_version": ScorecardResults.SCHEMA_VERSION, "profile": "p", "config_hash": "h", "sources": [],
            "verdict_rule": "k sigma"}
    old = {**base, "claims": [old_row]}
    assert ScorecardResults.from_dict(old).to_dict() == old
    new = {**base, "legacy_verdict_rule": "k sigma", "claims": [{**old_row, "verdict": "contradicted",
                                                                  "legacy_verdict": "not reproduced", "stats": {}}]}
    new = {k: new[k] for k in ("schema_version", "profile", "config_hash", "sources", "verdict_rule",
                               "legacy_verdict_rule", "claims")}
    new["claims"] = [{k: new["claims"][0][k] for k in ("claim", "text", "verdict", "legacy_verdict", "metric", "values",
                                                         "seeds", "evidence", "note", "stats")}]
    back = ScorecardResults.from_dict(new)
    assert back.claims[0].legacy_verdict == "not reproduced" and back.to_dict() == new
    with pytest.raises(ResultsSchemaError, match="unknown key 'surprise' in ScorecardClaim"):
        ScorecardResults.from_dict({**old, "claims": [{**old_row, "surprise": 1}]})


def test_other_term_arms_pass_the_scorecard_schema():
    """C7's ``other_arms`` block (the TERM bracket beside the verdict) is a key the results
    schema knows, so stage 08 can write and read it back."""
    from ssae_utils.results.stages import ScorecardClaim

    row = {"claim": "C7", "text": "t", "verdict": "contradicted", "legacy_verdict": "inconclusive", "metric": None,
           "values": None, "seeds": None, "evidence": [], "note": None, "stats": {},
           "other_arms": {"claim": "C7", "outcome": "untestable", "family_size": 0, "alpha": 0.05, "notes": [], "subtests": []}}
    assert ScorecardClaim.from_dict(row).other_arms["outcome"] == "untestable"
