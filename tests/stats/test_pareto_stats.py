"""C1-C5's four-outcome verdicts from per-document CE: the arm of a curve reproduces the
figure's mean height exactly, and the verdicts follow the evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.pipeline.pareto import build_curves, curve_name, seed_spread
from ssae_utils.sae.pareto import compare_auc
from ssae_utils.stats.hierarchical import Arm, t_quantile
from ssae_utils.stats.pareto import EVIDENCE, curve_arm, curve_of, gap_to_gsae, pareto_subtests, term_ppl_test
from ssae_utils.stats.verdict import SEEDS_PRECONDITION, judge_family
from tests.stats.synthetic import World, draw_docs, draw_sums

LAMBDAS = (0.5, 1.0, 2.0)
# mean CE per strategy and lambda (lower is better); strategy -> number of seeds
MU = {"general": (4.30, 4.20, 4.10), "dense": (4.10, 4.00, 3.90), "bm25": (4.2, 4.1, 4.0),
      "seed_only": (4.1, 4.0, 3.9), "dense_tracin": (4.1, 4.0, 3.9), "bm25_tracin": (4.2, 4.1, 4.0)}
SEEDS = {"general": 3, "dense": 3, "bm25": 1, "seed_only": 1, "dense_tracin": 1, "bm25_tracin": 1}


GSAE_CE = 4.2


def synthetic_stage03(seed: int = 0, n_docs: int = 30, keep: bool = True, mu=None, seeds=None, term=None):
    """A 03_finetune.json-shaped dict (physics, test and ood_test) and its 04 figures (fig1a,
    fig4; fig6 too with ``term = (mean CE per lambda, seeds)``: Dense+TERM t=500 rows).
    ``mu`` / ``seeds`` override ``MU`` / ``SEEDS`` per strategy; the GSAE's mean CE is GSAE_CE."""
    mu, seeds = {**MU, **(mu or {})}, {**SEEDS, **(seeds or {})}
    models = {(s, 0.0): (mu[s], seeds[s]) for s in MU}
    if term is not None:
        models[("dense", 500.0)] = term
    rng = np.random.default_rng(seed)
    world = World(seed_sd=0.01, noise_sd=0.02)
    splits = {"test": 0.0, "ood_test": 1.0}
    eval_documents, sums = {}, {}
    for split, shift in splits.items():
        tokens = draw_docs(rng, n_docs)
        beta = rng.normal(0, world.doc_sd, n_docs)
        gsae = draw_sums(rng, world, {"g": GSAE_CE + shift}, {"g": 1}, tokens, beta=beta, seed_effects={"g": np.zeros(1)})["g"][0]
        eval_documents[split] = {"doc_ids": [f"{split}{i}" for i in range(n_docs)], "tokens": tokens.tolist(),
                                 "clean": (gsae * 0.7).tolist(), "gsae": gsae.tolist()}
        sums[split] = {(m, k): draw_sums(rng, world, {"x": models[m][0][k] + shift}, {"x": models[m][1]}, tokens, beta=beta)["x"]
                       for m in models for k in range(len(LAMBDAS))}
    rows = []
    for m, (_, n_seeds) in models.items():
        for k, lam in enumerate(LAMBDAS):
            for j in range(n_seeds):
                row = {"domain": "physics", "strategy": m[0], "tilt": m[1], "lambda": lam, "seed": j,
                       "val_l0": 150.0 - 40 * k + rng.normal(0, 2)}
                for split in splits:
                    t = np.asarray(eval_documents[split]["tokens"], dtype=float)
                    ce = sums[split][(m, k)][j].sum() / t.sum()
                    ce_g = np.sum(eval_documents[split]["gsae"]) / t.sum()
                    row.update({f"{split}_ce": ce, f"{split}_ppl": np.exp(ce), f"{split}_ppl_rel_gsae": np.exp(ce - ce_g),
                                f"{split}_dead_features": 0})
                if keep:
                    row["ce_sums"] = {split: sums[split][(m, k)][j].tolist() for split in splits}
                rows.append(row)
    finetune = {"rows": rows, **({"eval_documents": {"physics": eval_documents}} if keep else {})}
    figures = {}
    figs = [("fig1a", "test", "erm"), ("fig4", "ood_test", "erm")] + ([("fig6", "test", "term")] if term else [])
    for fig, split, kind in figs:
        curves = build_curves(rows, "physics", split, True, kind, "dense")
        valid = {n: ([p["l0"] for p in pts], [p["y"] for p in pts]) for n, pts in curves.items()}
        auc = compare_auc(valid, (60.0, 140.0))
        figures[fig] = {"domain": "physics", "split": split, "kind": kind, "curves": curves, "auc": auc,
                        "seed_spread": seed_spread(rows, "physics", split, True, kind, "dense", auc["common"])}
    return finetune, {"figures": figures}


def test_a_curves_arm_is_the_figures_mean_height():
    finetune, pareto = synthetic_stage03()
    for fig in ("fig1a", "fig4"):
        for curve in MU:
            arm = curve_arm(finetune, pareto["figures"][fig], curve)
            assert arm.mean == pytest.approx(pareto["figures"][fig]["auc"]["auc"][curve]["mean_y"], rel=1e-12)
            assert arm.n_seeds == SEEDS[curve]


def test_verdicts_follow_the_evidence_and_one_seed_arms_are_untestable():
    finetune, pareto = synthetic_stage03()
    judged = judge_family(pareto_subtests(finetune, pareto))
    assert judged["C1"].outcome == "reproduced"            # Dense 0.2 nats below General, 3 seeds each
    c1 = judged["C1"].subtests[0]
    assert c1.effect < 0 and c1.interval[1] < 0 and c1.n_seeds == {"dense": 3, "general": 3} and c1.n_docs == {"test": 30}
    # BM25, Seed-only and the TracIn curves have one seed: their training noise is unknown
    for c in ("C2", "C3", "C4", "C5"):
        assert judged[c].outcome == "untestable", c
    assert judged["C1"].family_size == 1


def test_results_without_per_document_ce_are_untestable_with_the_reason():
    finetune, pareto = synthetic_stage03(keep=False)
    judged = judge_family(pareto_subtests(finetune, pareto))
    assert all(r.outcome == "untestable" for r in judged.values())
    pre = judged["C1"].subtests[0].preconditions[0]
    assert pre.name == EVIDENCE and not pre.ok
    assert all(r.outcome == "untestable" for r in judge_family(pareto_subtests(None, pareto)).values())


def test_the_four_outcome_verdict_is_the_headline_and_the_old_one_is_kept():
    from ssae_utils.scorecard.claims import score_claims

    finetune, pareto = synthetic_stage03()
    rows = {r["claim"]: r for r in score_claims({"04_pareto.json": pareto, "03_finetune.json": finetune})}
    assert rows["C1"]["verdict"] == rows["C1"]["stats"]["outcome"] == "reproduced"
    assert rows["C1"]["legacy_verdict"] in ("reproduced", "inconclusive", "not reproduced")
    assert rows["C1"]["evidence"] and rows["C1"]["values"]
    # C6 needs 05_tail_tokens.json: untestable, naming it
    assert rows["C6"]["verdict"] == "untestable" and rows["C6"]["legacy_verdict"] == "inconclusive"
    assert "05_tail_tokens.json" in rows["C6"]["stats"]["subtests"][0]["preconditions"][0]["name"]


# ------------------------------------------------------------------ C7's perplexity part
def test_curve_names_match_stage_04s():
    for strategy, tilt in [("dense", 0.0), ("general", 0), ("dense", 500.0), ("dense", 1e9), ("bm25", 0.5)]:
        assert curve_of(strategy, tilt) == curve_name(strategy, tilt)


@pytest.mark.parametrize("term_mu,expected", [
    ((4.10, 4.00, 3.90), "reproduced"),       # the same CE as Dense: ratio 1.0, well inside 1.1
    ((4.55, 4.45, 4.35), "contradicted"),     # exp(0.45) = 1.57 x Dense's
    ((4.195, 4.095, 3.995), "inconclusive"),  # exp(0.095) = 1.0997: on the margin
])
def test_c7_perplexity_is_a_non_inferiority_test(term_mu, expected):
    finetune, pareto = synthetic_stage03(term=(term_mu, 3))
    test = term_ppl_test(finetune, pareto)
    fig6 = pareto["figures"]["fig6"]
    term, dense = fig6["auc"]["auc"]["dense+TERM t=500"]["mean_y"], fig6["auc"]["auc"]["dense"]["mean_y"]
    assert test.estimate.effect == pytest.approx(term - 1.1 * dense, rel=1e-9)
    assert judge_family({"C7": [test]})["C7"].outcome == expected
    assert f"{term / dense:.3g} x Dense ERM" in test.notes[0]


def test_c7_perplexity_with_one_term_seed_is_untestable():
    finetune, pareto = synthetic_stage03(term=((4.1, 4.0, 3.9), 1))
    r = judge_family({"C7": [term_ppl_test(finetune, pareto)]})["C7"].subtests[0]
    assert r.outcome == "untestable" and r.effect is not None
    assert [p for p in r.preconditions if p.name == SEEDS_PRECONDITION][0].detail == "one seed: dense+TERM t=500"
    no_fig = term_ppl_test(finetune, {"figures": {k: v for k, v in pareto["figures"].items() if k != "fig6"}})
    assert no_fig.estimate is None and "fig6" in no_fig.preconditions[-1].name


# ------------------------------------------------------------------ gaps to the GSAE
def test_an_arms_gap_to_the_gsae_is_its_own_hierarchical_interval():
    # no document noise: the interval is the arm's own seeds, t with 2 df
    arm = Arm(np.array([1.19, 1.2, 1.21]), {"test": np.zeros((3, 5))})
    g = gap_to_gsae(arm, "general", "test")
    se = (0.0001 / 3) ** 0.5
    assert g["effect"] == pytest.approx(0.2) and g["se"] == pytest.approx(se) and g["df"] == pytest.approx(2)
    assert g["interval"] == pytest.approx([0.2 - t_quantile(0.975, 2) * se, 0.2 + t_quantile(0.975, 2) * se])
    assert g["significant"] is True
    wide = gap_to_gsae(Arm(np.array([1.1, 1.2, 1.3]), {"test": np.zeros((3, 5))}), "general", "test")
    assert wide["interval"][0] < 0 < wide["interval"][1] and wide["significant"] is False
    one = gap_to_gsae(Arm(np.array([1.2]), {"test": np.ones((1, 5)) * np.arange(5)}), "general", "test")
    assert one["seed_variance_known"] is False and one["significant"] is None


def test_vs_gsae_is_reported_and_a_damaged_baseline_is_flagged():
    # General 0.3 nats above the GSAE (relative PPL ~1.35); Dense 0.1 below it
    damaged, pareto = synthetic_stage03(mu={"general": (4.5, 4.5, 4.5), "dense": (4.1, 4.1, 4.1)})
    c1 = judge_family(pareto_subtests(damaged, pareto))["C1"]
    sub = c1.subtests[0]
    fig = pareto["figures"]["fig1a"]["auc"]["auc"]
    for arm in ("dense", "general"):
        assert sub.vs_gsae[arm]["effect"] == pytest.approx(fig[arm]["mean_y"] - 1, rel=1e-9)
    assert sub.vs_gsae["general"]["effect"] == pytest.approx(np.exp(0.3) - 1, abs=0.03)
    assert sub.vs_gsae["dense"]["effect"] == pytest.approx(np.exp(-0.1) - 1, abs=0.03)
    assert sub.vs_gsae["dense"]["effect"] - sub.vs_gsae["general"]["effect"] == pytest.approx(sub.effect, rel=1e-9)
    assert sub.vs_gsae["general"]["interval"][0] > 0 and sub.vs_gsae["general"]["significant"]
    assert c1.outcome == "reproduced" and len(c1.notes) == 1 and c1.notes[0].startswith("damaged baseline")
    assert c1.to_dict()["notes"] == c1.notes and "vs the GSAE: dense -0.1" in c1.notes[0]
    # C5's seed-only vs General carries the same flag; C2 (no General arm) does not
    judged = judge_family(pareto_subtests(damaged, pareto))
    assert judged["C5"].subtests[0].notes and not judged["C2"].subtests[0].notes
    # the degradation tests report every arm on both splits
    assert set(judged["C3"].subtests[0].vs_gsae) == {"bm25 (test)", "bm25 (ood_test)", "dense (test)", "dense (ood_test)"}
    # a baseline as good as the GSAE: no flag
    healthy, pareto = synthetic_stage03(mu={"general": (4.2, 4.2, 4.2)})
    c1 = judge_family(pareto_subtests(healthy, pareto))["C1"]
    assert not c1.notes and not c1.subtests[0].vs_gsae["general"]["significant"]


def test_a_named_term_arm_is_tested_over_the_window_it_shares_with_dense():
    from ssae_utils.stats.pareto import other_arm_ppl_tests, shared_window

    finetune, pareto = synthetic_stage03(term=((4.10, 4.00, 3.90), 3))
    fig6 = pareto["figures"]["fig6"]
    assert shared_window(fig6, ("dense+TERM t=500", "dense")) == pytest.approx(fig6["auc"]["common"])
    named = term_ppl_test(finetune, pareto, curve="dense+TERM t=500")
    assert named.estimate.effect == pytest.approx(term_ppl_test(finetune, pareto).estimate.effect, rel=1e-12)
    missing = term_ppl_test(finetune, pareto, curve="dense+TERM t=3 (loss_scale)")
    assert missing.estimate is None
    # the judged arm is never among the others; a sweep naming it picks it whatever the order
    assert other_arm_ppl_tests(finetune, pareto) == []
    with_sweep = {**finetune, "sweep": {"term_strategy": "dense", "term_tilts": [500.0], "judged_tilt": 500.0}}
    assert other_arm_ppl_tests(with_sweep, pareto) == []
