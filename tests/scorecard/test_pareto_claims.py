import pytest

from ssae_utils.scorecard import pareto_claims as pc


def _fig(heights, seeds=None, spread=None, common=(80.0, 140.0)):
    seeds = seeds or {}
    return {"auc": {"common": list(common), "auc": {k: {"mean_y": v} for k, v in heights.items()}},
            "curves": {k: [{"seeds": seeds.get(k, 1)}, {"seeds": seeds.get(k, 1)}] for k in heights},
            "seed_spread": spread or {}}


def _pareto(sd=0.05):
    spread = {"general": {"std": sd}, "dense": {"std": sd}} if sd is not None else {}
    test = {"general": 1.2, "seed_only": 0.9, "bm25": 0.85, "dense": 0.8, "bm25_tracin": 0.81, "dense_tracin": 0.79}
    ood = {"general": 1.3, "seed_only": 1.2, "bm25": 1.1, "dense": 0.8, "bm25_tracin": 0.97, "dense_tracin": 0.87}
    seeds = {"general": 3, "dense": 3}
    return {"figures": {"fig1a": _fig(test, seeds, spread), "fig4": _fig(ood, seeds, spread),
                        "fig6": _fig({"dense": 0.8, "dense+TERM t=500": 0.85, "dense+TERM t=1e+09": 1.2}, common=(86, 119))}}


def test_gaps_use_the_pooled_seed_noise():
    p = _pareto()
    c1 = pc.claim_c1(p)[0]
    assert c1.value == pytest.approx(-0.4) and c1.se == pytest.approx(0.05 * (2 / 3) ** 0.5)
    assert c1.verdict == "reproduced"
    c2 = pc.claim_c2(p)[0]      # dense 0.8 (3 seeds) vs bm25 0.85 (1 seed): se = 0.05*sqrt(4/3) = 0.058
    assert c2.verdict == "inconclusive"
    c3 = pc.claim_c3(p)[0]      # (1.1-0.8) - (0.85-0.8) = 0.25 > 2 * sqrt(2) * 0.058
    assert c3.value == pytest.approx(0.25) and c3.verdict == "reproduced"
    c4 = pc.claim_c4(p)
    assert [e.verdict for e in c4] == ["inconclusive", "inconclusive"] and pc.verdict_of(c4) == "inconclusive"
    c5 = pc.claim_c5(p)
    assert [e.verdict for e in c5] == ["reproduced", "reproduced"]


def test_no_seed_spread_means_no_verdict_and_says_so():
    c1 = pc.claim_c1(_pareto(sd=None))[0]
    assert c1.verdict == "inconclusive" and "noise is unknown" in c1.note


def test_term_perplexity_is_comparable_within_a_fixed_ratio():
    ev = pc.term_ppl_evidence(_pareto())
    assert [round(e.value, 4) for e in ev] == [round(0.85 / 0.8, 4), 1.5]
    assert [e.verdict for e in ev] == ["reproduced", "not reproduced"]
    assert pc.claim_c1({"figures": {}})[0].verdict == "inconclusive"
