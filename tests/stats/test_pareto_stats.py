"""C1-C5's four-outcome verdicts from per-document CE: the arm of a curve reproduces the
figure's mean height exactly, and the verdicts follow the evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.pipeline.pareto import build_curves, seed_spread
from ssae_utils.sae.pareto import compare_auc
from ssae_utils.stats.pareto import EVIDENCE, curve_arm, pareto_subtests
from ssae_utils.stats.verdict import judge_family
from tests.stats.synthetic import World, draw_docs, draw_sums

LAMBDAS = (0.5, 1.0, 2.0)
# mean CE per strategy and lambda (lower is better); strategy -> number of seeds
MU = {"general": (4.30, 4.20, 4.10), "dense": (4.10, 4.00, 3.90), "bm25": (4.2, 4.1, 4.0),
      "seed_only": (4.1, 4.0, 3.9), "dense_tracin": (4.1, 4.0, 3.9), "bm25_tracin": (4.2, 4.1, 4.0)}
SEEDS = {"general": 3, "dense": 3, "bm25": 1, "seed_only": 1, "dense_tracin": 1, "bm25_tracin": 1}


def synthetic_stage03(seed: int = 0, n_docs: int = 30, keep: bool = True):
    """A 03_finetune.json-shaped dict (physics, test and ood_test) and its 04 figures."""
    rng = np.random.default_rng(seed)
    world = World(seed_sd=0.01, noise_sd=0.02)
    splits = {"test": 0.0, "ood_test": 1.0}
    eval_documents, sums = {}, {}
    for split, shift in splits.items():
        tokens = draw_docs(rng, n_docs)
        beta = rng.normal(0, world.doc_sd, n_docs)
        gsae = draw_sums(rng, world, {"g": 4.2 + shift}, {"g": 1}, tokens, beta=beta, seed_effects={"g": np.zeros(1)})["g"][0]
        eval_documents[split] = {"doc_ids": [f"{split}{i}" for i in range(n_docs)], "tokens": tokens.tolist(),
                                 "clean": (gsae * 0.7).tolist(), "gsae": gsae.tolist()}
        sums[split] = {(s, k): draw_sums(rng, world, {"x": MU[s][k] + shift}, {"x": SEEDS[s]}, tokens, beta=beta)["x"]
                       for s in MU for k in range(len(LAMBDAS))}
    rows = []
    for s in MU:
        for k, lam in enumerate(LAMBDAS):
            for j in range(SEEDS[s]):
                row = {"domain": "physics", "strategy": s, "tilt": 0.0, "lambda": lam, "seed": j,
                       "val_l0": 150.0 - 40 * k + rng.normal(0, 2)}
                for split in splits:
                    t = np.asarray(eval_documents[split]["tokens"], dtype=float)
                    ce = sums[split][(s, k)][j].sum() / t.sum()
                    ce_g = np.sum(eval_documents[split]["gsae"]) / t.sum()
                    row.update({f"{split}_ce": ce, f"{split}_ppl": np.exp(ce), f"{split}_ppl_rel_gsae": np.exp(ce - ce_g),
                                f"{split}_dead_features": 0})
                if keep:
                    row["ce_sums"] = {split: sums[split][(s, k)][j].tolist() for split in splits}
                rows.append(row)
    finetune = {"rows": rows, **({"eval_documents": {"physics": eval_documents}} if keep else {})}
    figures = {}
    for fig, split in (("fig1a", "test"), ("fig4", "ood_test")):
        curves = build_curves(rows, "physics", split, True, "erm", "dense")
        valid = {n: ([p["l0"] for p in pts], [p["y"] for p in pts]) for n, pts in curves.items()}
        auc = compare_auc(valid, (60.0, 140.0))
        figures[fig] = {"domain": "physics", "split": split, "curves": curves, "auc": auc,
                        "seed_spread": seed_spread(rows, "physics", split, True, "erm", "dense", auc["common"])}
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


def test_the_scorecard_carries_the_four_outcome_verdicts_beside_the_old_ones():
    from ssae_utils.scorecard.claims import score_claims

    finetune, pareto = synthetic_stage03()
    rows = {r["claim"]: r for r in score_claims({"04_pareto.json": pareto, "03_finetune.json": finetune})}
    assert rows["C1"]["stats"]["outcome"] == "reproduced" and rows["C1"]["verdict"] in ("reproduced", "inconclusive",
                                                                                       "not reproduced")
    assert "stats" not in rows["C6"]
