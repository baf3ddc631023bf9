import pytest

from ssae_utils.analysis.matched import ModelSpec, compared_models, pick_matched_models
from ssae_utils.results import ABSENT, FinetuneResults, FinetuneRow, GsaeBlock, GsaeSplit, SetupResults


def _row(strategy, tilt, lam, l0, seed=0, domain="physics"):
    return FinetuneRow(domain=domain, strategy=strategy, tilt=tilt, lam=lam, seed=seed, ssae_folder=f"saes/{strategy}_{tilt:g}_{lam:g}_{seed}",
                       checkpoint_step=10, steps=10, val_objective_by_step={}, train_s=None, train_tokens_unique=None,
                       metrics={"val_l0": l0})


STAGE00 = SetupResults(profile="t", config_hash="h", config={}, data_card=[], model={}, activation_store={}, timings={},
                       gsae=GsaeBlock(folder="saes/gsae/abc", training={}, heldout={}, feature_density=[]))


def _finetune(rows=(), sweep=None, domains=ABSENT):
    return FinetuneResults(profile="t", config_hash="h", sweep=sweep or {}, domains=domains, act_scale=1.0,
                           gsae={"physics": {"val": GsaeSplit(gsae={"l0": 99.0})}}, eval_splits={}, eval_tokens={},
                           rows=list(rows), timings={})


def _stage03(**kw):
    rows = []
    for strategy, tilt in [("general", 0.0), ("dense", 0.0), ("dense", 500.0), ("dense", 1e9)]:
        for lam, l0 in [(0.5, 160.0), (1.0, 104.0), (2.0, 70.0)]:
            rows.append(_row(strategy, tilt, lam, l0 + (5 if tilt else 0)))
            rows.append(_row(strategy, tilt, lam, l0 - 20, seed=1))
    return _finetune(rows, **kw)


def test_picks_lambda_with_closest_validation_l0_and_records_it():
    picked = pick_matched_models(STAGE00, _stage03(), "physics", 100.0)
    assert [m.label for m in picked] == [s.label for s in compared_models()]
    gsae, general, dense, t500, tmax = picked
    assert gsae.is_gsae and gsae.folder == "saes/gsae/abc" and gsae.val_l0 == 99.0
    assert general.l1_coefficient == 1.0 and general.val_l0 == 104.0 and general.seed == 0
    assert t500.val_l0 == 109.0 and t500.target_l0 == 100.0
    assert tmax.folder == "saes/dense_1e+09_1_0"


def test_seed_choice_and_ties_go_to_the_sparser_model():
    picked = pick_matched_models(STAGE00, _stage03(), "physics", 87.0, [ModelSpec("D", "dense")], seed=1)
    # seed 1 L0s are 140 / 84 / 50: 84 is closest
    assert picked[0].l1_coefficient == 1.0 and picked[0].seed == 1
    tie = pick_matched_models(STAGE00, _stage03(), "physics", 132.0, [ModelSpec("D", "dense")])  # 160 vs 104: both 28 away
    assert tie[0].l1_coefficient == 1.0


def test_missing_spec_or_domain_names_the_notebook():
    with pytest.raises(ValueError, match="notebook 03"):
        pick_matched_models(STAGE00, _stage03(), "physics", 100.0, [ModelSpec("BM25", "bm25")])
    with pytest.raises(ValueError, match="notebook 03"):
        pick_matched_models(STAGE00, _stage03(), "toxicity", 100.0)
    with pytest.raises(ValueError, match="positive"):
        pick_matched_models(STAGE00, _stage03(), "physics", float("nan"))


def test_compared_models_follow_the_sweeps_tilts():
    from ssae_utils.analysis.matched import compared_models, tilt_label

    assert [tilt_label(t) for t in (500.0, 1e9, 1.0, 0.5, 2.5e6)] == ["500", "1e9", "1", "0.5", "2.5e6"]
    assert [s.label for s in compared_models()] == ["GSAE", "General SSAE", "Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"]
    stage03 = _stage03(sweep={"term_tilts": [1.0, 3.0], "term_strategy": "dense"},
                       domains={"physics": {"term": True}, "toxicity": {"term": False}})
    specs = compared_models(stage03, "physics")
    assert [(s.label, s.tilt) for s in specs[3:]] == [("Dense+TERM t=1", 1.0), ("Dense+TERM t=3", 3.0)]
    assert len(compared_models(stage03, "toxicity")) == 3  # no TERM trained there


def test_model_labels_resolve_with_the_term_alias_or_fail_clearly():
    from ssae_utils.analysis.matched import compared_models, resolve_specs

    specs = compared_models(_finetune(sweep={"term_tilts": [1.0]}, domains={"physics": {"term": True}}))
    assert [s.label for s in resolve_specs(["Dense SSAE", "TERM"], specs)] == ["Dense SSAE", "Dense+TERM t=1"]
    no_term = compared_models(_finetune(sweep={"term_tilts": [1.0]}, domains={"law": {"term": False}}), "law")
    assert [s.label for s in resolve_specs(["GSAE", "TERM"], no_term)] == ["GSAE"]   # a domain without TERM
    with pytest.raises(ValueError, match="Dense\\+TERM t=500.*not among"):
        resolve_specs(["Dense+TERM t=500"], specs)


def test_the_term_arms_alias_names_every_arm_after_the_judged_one_once():
    from ssae_utils.analysis.matched import compared_models, other_term_arms, resolve_specs

    specs = compared_models(_finetune(sweep={"term_tilts": [1.0, 3.0], "judged_tilt": 3.0,
                                             "term_arms": [{"t": 2.0, "normalize": "loss_scale"}]},
                                      domains={"physics": {"term": True}}))
    assert [s.label for s in other_term_arms(specs)] == ["Dense+TERM t=1", "Dense+TERM t=2 (loss_scale)"]
    both = resolve_specs(["GSAE", "TERM", "TERM arms"], specs)
    assert [s.label for s in both] == ["GSAE", "Dense+TERM t=3", "Dense+TERM t=1", "Dense+TERM t=2 (loss_scale)"]
    # an arm named on its own is not repeated by the alias
    named = resolve_specs(["Dense+TERM t=1", "TERM arms"], specs)
    assert [s.label for s in named] == ["Dense+TERM t=1", "Dense+TERM t=2 (loss_scale)"]
    no_term = compared_models(_finetune(sweep={"term_tilts": [1.0]}, domains={"law": {"term": False}}), "law")
    assert [s.label for s in resolve_specs(["GSAE", "TERM", "TERM arms"], no_term)] == ["GSAE"]
