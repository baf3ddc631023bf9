"""C6-C9 under the four-outcome rule: each outcome on synthetic results, with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ssae_utils.analysis.coverage import tail_token_table
from ssae_utils.stats import result_tests as rt
from ssae_utils.stats.verdict import judge_family
from tests.stats.synthetic import bios_results

TERM = "Dense+TERM t=500"
BASE = "General SSAE"


def outcome(test):
    return judge_family({"c": [test]})["c"].outcome


def judged(test):
    return judge_family({"c": [test]})["c"].subtests[0]


# ------------------------------------------------------------------ C6 / C7 tail
def _summary_tail(only_dense, only_base, n=3753):
    summary = {rt.DENSE_LABEL: {"only_ssae": only_dense, "only_baseline": only_base, "both": 0}}
    return {"tail_tokens": {"n_tail_types": n, "max_count": 4, "baseline": BASE, "summary": summary, "rows": []},
            "frequency": {"split": "physics_test", "documents": 318}, "per_model": {}, "activation_sample": {}}


@pytest.mark.parametrize("b,c,expected", [(460, 240, "reproduced"), (240, 460, "contradicted"), (250, 240, "inconclusive"),
                                          (3, 2, "untestable")])
def test_c6_is_a_mcnemar_paired_proportion(b, c, expected):
    test = rt.tail_coverage_test(_summary_tail(b, c))
    assert outcome(test) == expected
    assert test.estimate.effect == pytest.approx((b - c) / 3753) and test.estimate.se == pytest.approx(math.sqrt(b + c) / 3753)
    r = judged(test)
    assert r.n_docs == {"physics_test": 318} and r.n_seeds == {rt.DENSE_LABEL: 1, BASE: 1}
    assert "training-seed noise is not in the interval" in r.noise
    if expected != "untestable":
        d = r.to_dict()
        assert d["df"] is None and d["distribution"] == "normal"      # JSON-safe: no Infinity
        assert r.mde == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * test.estimate.se)


def _coverage_tail(seed=0, n_types=2000, p=(0.3, 0.35, 0.3)):
    """A 05-shaped dict from explicit coverage masks (the real coverage table), and the masks."""
    rng = np.random.default_rng(seed)
    counts = torch.tensor(rng.integers(1, 8, size=n_types))
    masks = {name: torch.tensor(rng.random(n_types) < q) for name, q in zip((BASE, rt.DENSE_LABEL, TERM), p)}
    top = {name: torch.zeros((1, 1), dtype=torch.long) for name in masks}
    table = tail_token_table(masks, top, counts, BASE, [rt.DENSE_LABEL, TERM], 4, str)
    tail = {"tail_tokens": table, "frequency": {"split": "test", "documents": 50}}
    return tail, masks, (counts >= 1) & (counts <= 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c7_tail_is_term_minus_dense_exactly_with_a_conservative_se(seed):
    tail, m, in_tail = _coverage_tail(seed)
    test = rt.term_tail_test(tail)
    n = int(in_tail.sum())
    t, d = m[TERM] & in_tail, m[rt.DENSE_LABEL] & in_tail
    assert test.estimate.effect == pytest.approx((int(t.sum()) - int(d.sum())) / n)
    # the net gain over the baseline, TERM minus Dense, is the same number
    s = tail["tail_tokens"]["summary"]
    net = lambda k: (s[k]["only_ssae"] - s[k]["only_baseline"]) / n   # noqa: E731
    assert test.estimate.effect == pytest.approx(net(TERM) - net(rt.DENSE_LABEL))
    true_disc = int((t ^ d).sum())
    detail = test.estimate.components[0].detail
    assert detail["outside_exact"] and detail["discordant_min"] <= true_disc <= detail["discordant_max"]
    outside = ~m[BASE] & in_tail
    assert detail["discordant_outside_baseline"] == int(((t ^ d) & outside).sum())
    assert test.estimate.se == pytest.approx(math.sqrt(detail["discordant_max"]) / n)
    assert test.estimate.se >= math.sqrt(true_disc) / n


def test_c7_tail_outcomes():
    more = rt.term_tail_test(_coverage_tail(0, p=(0.3, 0.2, 0.45))[0])
    fewer = rt.term_tail_test(_coverage_tail(0, p=(0.3, 0.45, 0.2))[0])
    assert (outcome(more), outcome(fewer)) == ("reproduced", "contradicted")
    # summaries only (no rows): both parts of the discordant count are bounded
    summary = {rt.DENSE_LABEL: {"only_ssae": 460, "only_baseline": 240, "both": 300},
               TERM: {"only_ssae": 455, "only_baseline": 238, "both": 302}}
    same = rt.term_tail_test({"tail_tokens": {"n_tail_types": 3753, "baseline": BASE, "summary": summary, "rows": []}})
    assert outcome(same) == "inconclusive" and same.estimate.effect == pytest.approx((757 - 760) / 3753)
    detail = same.estimate.components[0].detail
    # outside the baseline: at most 460 + 455; inside its 540 types: TERM and Dense overlap on >= 62 of them
    assert not detail["outside_exact"] and detail["discordant_max"] == (460 + 455) + (2 * 540 - 300 - 302)
    inconsistent = {rt.DENSE_LABEL: summary[rt.DENSE_LABEL], TERM: {**summary[TERM], "both": 0}}
    assert outcome(rt.term_tail_test({"tail_tokens": {"n_tail_types": 3753, "baseline": BASE, "summary": inconsistent}})) \
        == "untestable"
    no_term = _coverage_tail(0)[0]
    no_term["tail_tokens"]["summary"].pop(TERM)
    assert outcome(rt.term_tail_test(no_term)) == "untestable"


# ------------------------------------------------------------------ C7 breadth
def _per_model(term, dense):
    return {"per_model": {TERM: {"activation_counts": list(term)}, rt.DENSE_LABEL: {"activation_counts": list(dense)}},
            "activation_sample": {"documents": 241}}


def test_c7_breadth_outcomes():
    dense = list(range(400))
    spread = [10 + 5 * math.sin(i) for i in range(400)]
    broader = rt.breadth_test(_per_model([c + d for c, d in zip(dense, spread)], dense))
    assert outcome(broader) == "reproduced" and broader.estimate.effect == pytest.approx(float(np.median(spread)))
    assert outcome(rt.breadth_test(_per_model([c - d for c, d in zip(dense, spread)], dense))) == "contradicted"
    noisy = [5 * math.sin(3 * i) + 0.05 for i in range(400)]
    assert outcome(rt.breadth_test(_per_model([c + d for c, d in zip(dense, noisy)], dense))) == "inconclusive"
    # no spread at all: no standard error, untestable
    flat = rt.breadth_test(_per_model([15] * 50, [10] * 50))
    assert outcome(flat) == "untestable"
    assert judged(broader).n_docs == {"activation sample": 241}


# ------------------------------------------------------------------ C8
def _autointerp(term, dense, mode="claude", half=0.05):
    summary = {m: {"mean": v, "ci_low": v - half, "ci_high": v + half, "n": 20, "level": 0.95} for m, v in
               [(TERM, term), (rt.DENSE_LABEL, dense)]}
    return {"mode": mode, "explainer": "x", "summary": summary, "data": {"split": "physics_test", "documents": 318}}


def test_c8_outcomes_and_offline_is_untestable():
    assert outcome(rt.autointerp_test(_autointerp(0.8, 0.5))) == "reproduced"
    assert outcome(rt.autointerp_test(_autointerp(0.5, 0.8))) == "contradicted"
    assert outcome(rt.autointerp_test(_autointerp(0.52, 0.5, half=0.2))) == "inconclusive"
    offline = judged(rt.autointerp_test(_autointerp(0.8, 0.5, mode="offline")))
    assert offline.outcome == "untestable" and offline.effect == pytest.approx(0.3)
    failed = [p for p in offline.preconditions if not p.ok]
    assert [p.name for p in failed] == [rt.LLM_PRECONDITION] and "offline" in failed[0].detail
    # SE from the CIs: half-width / z, in quadrature
    se = rt.autointerp_test(_autointerp(0.8, 0.5)).estimate.se
    assert se == pytest.approx(math.sqrt(2) * 0.05 / sps.norm.ppf(0.975))
    no_ci = _autointerp(0.8, 0.5)
    no_ci["summary"][TERM]["ci_low"] = None
    assert outcome(rt.autointerp_test(no_ci)) == "untestable"


# ------------------------------------------------------------------ C9
def test_c9_outcomes():
    assert outcome(rt.shift_test(bios_results(0.1))) == "reproduced"
    assert outcome(rt.shift_test(bios_results(-0.1))) == "contradicted"
    assert outcome(rt.shift_test(bios_results(0.002))) == "inconclusive"
    r = judged(rt.shift_test(bios_results(0.1)))
    assert r.n_seeds == {"SSAE selection seeds": 3, "probe seeds": 3} and r.n_docs == {"test": 292}
    assert r.df is not None and math.isfinite(r.df) and r.interval[0] > 0


def test_c9_treats_the_runs_as_crossed_not_as_nine_independent_ones():
    bios = bios_results(0.05, seed=4)
    est = rt.shift_test(bios).estimate
    gsae = {r["probe_seed"]: r["worst_group_acc"] for r in bios["runs"] if r["row"] == "GSAE SHIFT"}
    x = np.array([[r["worst_group_acc"] - gsae[r["probe_seed"]] for r in bios["runs"]
                   if r["row"] == "SSAE SHIFT" and r["selection_seed"] == j] for j in range(3)])   # [SSAE, probe]
    assert est.effect == pytest.approx(x.mean())
    # the crossed-design variance: probe-seed means (paired unit) + the SSAEs' own variance net of the interaction
    v_probe = x.mean(0).var(ddof=1) / 3
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    v_sel = max(0.0, x.mean(1).var(ddof=1) - (resid ** 2).sum() / (2 * 2 * 3)) / 3
    assert est.se ** 2 == pytest.approx(v_probe + v_sel, rel=1e-9)
    assert [c.df for c in est.components] == [2, 2]      # 3 probe seeds, 3 SSAEs: not 8 df from 9 "runs"


def test_c9_needs_a_probe_that_uses_gender():
    weak = judged(rt.shift_test(bios_results(0.1, gender=(0.62, 0.58, 0.66))))       # the bound 0.58 <= 0.6
    assert weak.outcome == "untestable"
    pre = weak.preconditions[0]
    assert not pre.ok and "0.580" in pre.detail and "recorded 95% CI" in pre.detail
    # no CI: a Wilson bound from the 292 balanced test documents
    wilson = rt.gender_use_precondition(bios_results(0.1, gender=(0.70, 0, 0), ci=False))
    assert wilson.ok and "Wilson" in wilson.detail and f"{rt.wilson_lower(0.70, 292):.3f}" in wilson.detail
    assert rt.wilson_lower(0.62, 292) == pytest.approx(0.5631, abs=1e-3)
    assert not rt.gender_use_precondition(bios_results(0.1, gender=(0.62, 0, 0), ci=False)).ok
    # neither: the probe-seed spread
    bios = bios_results(0.1, gender=(0.9, 0, 0), ci=False)
    bios.pop("data")
    spread = rt.gender_use_precondition(bios)
    assert spread.ok and "spread over 3 probe seeds" in spread.detail
    # the embedded run's probe: 0.52 with CI [0.502, 0.541]
    assert outcome(rt.shift_test(bios_results(0.1, gender=(0.5205, 0.5023, 0.5411)))) == "untestable"


def test_c9_with_one_ssae_is_untestable():
    r = judged(rt.shift_test(bios_results(0.1, selection_seeds=(0,))))
    assert r.outcome == "untestable"
    assert [p.name for p in r.preconditions if not p.ok] == [">= 2 SSAE selection seeds (the SSAE's own training noise is known)"]


def test_wilson_lower_bound():
    # Wilson 95% for 60/100: [0.502, 0.691]
    assert rt.wilson_lower(0.6, 100) == pytest.approx(0.5020, abs=1e-3)


def test_the_other_term_arms_get_the_same_tests_beside_the_judged_one():
    """C7 breadth and C8 for every TERM model but the judged (first) one; naming one TERM
    model tests that one; a model that is not there is untestable, never another one."""
    other = "Dense+TERM t=1 (loss_scale)"
    dense = list(range(400))
    tail = _per_model([c + 10 + 5 * math.sin(c) for c in dense], dense)
    tail["per_model"][other] = {"activation_counts": [c - 10 - 5 * math.sin(c) for c in dense]}
    assert rt.term_labels(tail["per_model"]) == [TERM, other]
    assert outcome(rt.breadth_test(tail, term=other)) == "contradicted"
    assert outcome(rt.breadth_test(tail)) == "reproduced"                      # the judged arm
    assert outcome(rt.breadth_test(tail, term="Dense+TERM t=9")) == "untestable"
    ai = _autointerp(0.8, 0.5)
    ai["summary"][other] = {"mean": 0.2, "ci_low": 0.15, "ci_high": 0.25, "n": 20, "level": 0.95}
    beside = rt.other_arm_subtests(None, ai)
    assert beside["C7"] == [] and len(beside["C8"]) == 1 and "t=1 (loss_scale) minus" in beside["C8"][0].name
    assert outcome(beside["C8"][0]) == "contradicted"
