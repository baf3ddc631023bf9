"""Stage 04's curves from hand-made stage-03 rows, and the sweep config."""

from __future__ import annotations

import pytest

from ssae_utils.pipeline.pareto import build_curves, curve_name
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
    assert cfg.steps("physics") == 1000 and cfg.steps("toxicity") == 500
    for bad in ({"lambdas": []}, {"strategies_physics": ["nope"]}, {"term_domains": ["bios"]},
                {"l0_window": (140, 60)}, {"term_lambdas": []}, {"seeds": []}, {"term_lr": 0.0}):
        with pytest.raises(ValueError):
            SSAESweepConfig(**bad)
