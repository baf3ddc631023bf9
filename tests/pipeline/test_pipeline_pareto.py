"""Stage 04's curves from hand-made stage-03 rows, and the sweep config."""

from __future__ import annotations

import pytest

from ssae_utils.pipeline.pareto import build_curves, curve_name, seed_spread
from ssae_utils.domains import Domain
from ssae_utils.sae.config import SSAESweepConfig


def _row(strategy, lam, seed, l0, ppl, tilt=0.0, domain="physics"):
    return {"domain": domain, "strategy": strategy, "tilt": tilt, "lambda": lam, "seed": seed,
            "val_l0": l0, "test_ppl": ppl, "test_ppl_rel_gsae": ppl / 10, "test_dead_features": 1}


def test_curves_average_seeds_per_lambda_and_separate_term():
    rows = [_row("dense", 1.0, 0, 100, 10.0), _row("dense", 1.0, 1, 110, 12.0), _row("dense", 2.0, 0, 60, 14.0),
            _row("dense", 1.0, 0, 90, 11.0, tilt=500.0), _row("bm25", 1.0, 0, 105, 13.0),
            _row("dense", 1.0, 0, 100, 99.0, domain="toxicity")]
    erm = build_curves(rows, "physics", "test", False, "erm", "dense")
    assert set(erm) == {"dense", "bm25"}
    dense = erm["dense"]
    assert [p["lambda"] for p in dense] == [1.0, 2.0]
    assert dense[0]["l0"] == 105 and dense[0]["y"] == 11.0 and dense[0]["y_std"] == 1.0 and dense[0]["seeds"] == 2
    term = build_curves(rows, "physics", "test", True, "term", "dense")
    assert set(term) == {"dense", curve_name("dense", 500.0)} and term["dense+TERM t=500"][0]["y"] == pytest.approx(1.1)


def test_sweep_config():
    cfg = SSAESweepConfig(lambdas=[1, 2], term_lambdas=[0.1])
    assert cfg.lambdas_for(0.0) == (1.0, 2.0) and cfg.lambdas_for(500.0) == (0.1,)
    assert SSAESweepConfig(lambdas=[1]).lambdas_for(500.0) == (1.0,)
    assert SSAESweepConfig(lr=1e-3, term_lr=2e-4).lr_for(0.0) == 1e-3 and SSAESweepConfig(lr=1e-3, term_lr=2e-4).lr_for(1e9) == 2e-4
    assert SSAESweepConfig(lr=1e-3).lr_for(500.0) == 1e-3
    for bad in ({"lambdas": []}, {"term_strategy": "nope"}, {"term_lambdas": []}, {"seeds": []}, {"term_lr": 0.0},
                {"extra_seeds": [0]}, {"checkpoint_fractions": [0.0]}):
        with pytest.raises(ValueError):
            SSAESweepConfig(**bad)
    for bad in ({"strategies": ["nope"]}, {"l0_window": (140, 60)}, {"extra_seed_strategies": ["x"]}, {"steps": 0},
                {"figures": {"f": {"split": "ood_test"}}}, {"name": "a b"}, {"name": "general"}):
        with pytest.raises(ValueError):
            Domain(**{"name": "d", "source": "smoke_physics", **bad})


def test_extra_seeds_and_checkpoints_in_the_sweep_config():
    physics = Domain("physics", "smoke_physics", steps=60, extra_seed_strategies=("dense",), term=True)
    toxicity = Domain("toxicity", "smoke_toxicity", steps=4)
    cfg = SSAESweepConfig(seeds=[0], extra_seeds=[1, 2], checkpoint_fractions=[0.5])
    assert cfg.seeds_for(physics, "dense") == (0, 1, 2) and cfg.seeds_for(toxicity, "dense") == (0,)
    assert cfg.seeds_for(physics, "bm25") == (0,)
    assert cfg.seeds_for(physics, "dense", 500.0) == (0, 1, 2)
    erm_only = SSAESweepConfig(seeds=[0], extra_seeds=[1], extra_seeds_with_term=False)
    assert erm_only.seeds_for(physics, "dense", 0.0) == (0, 1) and erm_only.seeds_for(physics, "dense", 500.0) == (0,)
    # only the judged TERM arm (the first tilt, or judged_tilt) trains the extra seeds
    assert cfg.seeds_for(physics, "dense", 1e9) == (0,)
    judged = SSAESweepConfig(seeds=[0], extra_seeds=[1], judged_tilt=1e9)
    assert judged.seeds_for(physics, "dense", 1e9) == (0, 1) and judged.seeds_for(physics, "dense", 500.0) == (0,)
    with pytest.raises(ValueError, match="judged_tilt"):
        SSAESweepConfig(judged_tilt=3.0)
    assert cfg.checkpoint_fractions == (0.5, 1.0) and cfg.checkpoint_steps(physics) == (30,) and cfg.checkpoint_steps(toxicity) == (2,)
    assert SSAESweepConfig(checkpoint_fractions=[0.5]).checkpoint_steps(Domain("x", "smoke_physics", steps=1)) == ()
    runs = [(strategy, arm.t) for strategy, arm in cfg.runs(physics)]
    assert ("dense", 500.0) in runs and all(arm.is_erm for _, arm in cfg.runs(toxicity))


def test_seed_spread_is_each_seed_curve_height_over_the_common_window():
    rows = []
    for seed, shift in [(0, 0.0), (1, 1.0), (2, 2.0)]:
        rows += [_row("dense", 1.0, seed, 60, 10.0 + shift), _row("dense", 2.0, seed, 140, 20.0 + shift)]
    rows += [_row("bm25", 1.0, 0, 60, 30.0), _row("bm25", 2.0, 0, 140, 30.0)]
    spread = seed_spread(rows, "physics", "test", False, "erm", "dense", (60.0, 100.0))
    assert set(spread) == {"dense"}                       # one seed: no spread to report
    dense = spread["dense"]
    # each seed is a line from (60, 10+s) to (140, 20+s): mean height over [60, 100] is 12.5 + s
    assert dense["mean_y_by_seed"] == {"0": pytest.approx(12.5), "1": pytest.approx(13.5), "2": pytest.approx(14.5)}
    assert dense["mean"] == pytest.approx(13.5) and dense["std"] == pytest.approx(1.0)
    assert seed_spread(rows, "physics", "test", False, "erm", "dense", None) == {}


def test_seed_spread_table_lists_each_seed_of_multi_seed_curves():
    from ssae_utils.pipeline.pareto import seed_spread_table

    results = {"figures": {
        "fig1a": {"seed_spread": {"dense": {"window": [80.0, 140.0], "mean_y_by_seed": {"0": 0.8, "1": 0.82}, "mean": 0.81, "std": 0.014}}},
        "fig5a": {}}}
    assert seed_spread_table(results) == [{"figure": "fig1a", "curve": "dense", "window": [80.0, 140.0],
                                           "seed 0": 0.8, "seed 1": 0.82, "mean": 0.81, "std": 0.014}]
    assert seed_spread_table({"figures": {"fig5a": {}}}) == []


def test_term_arms_get_a_figure_of_their_own_and_the_paper_figure_keeps_term_tilts():
    """fig6 (C7's window) stays ERM vs the term_tilts arms; finetune.term_arms arms are drawn
    in fig6_arms beside them; C7 is judged on the declared arm, whatever the curve order."""
    from ssae_utils.pipeline.pareto import ARMS_KIND, build_curves, paper_arm_curves
    from ssae_utils.stats.pareto import judged_curve

    def row(strategy, tilt, lam, l0, y, **arm):
        return {"domain": "physics", "strategy": strategy, "tilt": tilt, "lambda": lam, "seed": 0, "val_l0": l0,
                "test_ppl": y, "test_ppl_rel_gsae": y, "test_dead_features": 0, **arm}

    rows = [row(s, t, lam, 100 / lam, 1 + 0.1 * lam + 0.01 * i, **arm)
            for i, (s, t, arm) in enumerate([("dense", 0.0, {}), ("dense", 1.0, {"tilt_normalize": "loss_scale"}),
                                              ("dense", 500.0, {}), ("dense", 0.78125, {}), ("general", 0.0, {})])
            for lam in (0.5, 1.0, 2.0)]
    sweep = {"term_strategy": "dense", "term_tilts": [0.78125, 500.0], "judged_tilt": 0.78125,
             "term_arms": [{"t": 1.0, "normalize": "loss_scale", "over": "tokens"}]}
    paper = paper_arm_curves(sweep)
    assert paper == {"dense+TERM t=0.78125", "dense+TERM t=500"}
    fig6 = build_curves(rows, "physics", "test", True, "term", "dense", paper)
    arms = build_curves(rows, "physics", "test", True, ARMS_KIND, "dense", paper)
    assert set(fig6) == {"dense", "dense+TERM t=500", "dense+TERM t=0.78125"}
    assert set(arms) == set(fig6) | {"dense+TERM t=1 (loss_scale)"}
    assert set(build_curves(rows, "physics", "test", True, "erm", "dense", paper)) == {"dense", "general"}
    assert judged_curve(sweep, arms) == "dense+TERM t=0.78125"        # not the first TERM curve (t=1)
    assert judged_curve({}, {"dense": 0, "dense+TERM t=3": 0}) == "dense+TERM t=3"
