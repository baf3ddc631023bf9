"""Stage 07: inputs it refuses, the study sets it builds, the table and the figure it draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssae_utils.bios.data import LabelledSet
from ssae_utils.config import load_profile
from ssae_utils.data.corpora import build_corpora
from ssae_utils.data.documents import make_document
from ssae_utils.io import write_json_atomic
from ssae_utils.paths import figures_dir, results_dir
from ssae_utils.pipeline.bias_in_bios import (
    PAPER_REFERENCE, RESULTS_FILE, Run, build_study_data, row_order, run_bias_in_bios, table, table_rows,
)
from ssae_utils.plots.bias_in_bios import plot_scr, plot_table1_shift


def test_missing_gsae_results_name_notebook_00(tmp_cache):
    with pytest.raises(FileNotFoundError, match="--only 00"):
        run_bias_in_bios(load_profile("smoke"))


def test_study_sets_on_the_smoke_biographies(tmp_cache):
    cfg = load_profile("smoke")
    data = build_study_data(build_corpora(cfg.data), cfg.bios)
    assert np.bincount(data.test.group, minlength=4).min() == np.bincount(data.test.group, minlength=4).max() > 0
    train_texts = {t for s in data.ambiguous for t in data.ambiguous[s].texts + data.balanced[s].texts}
    assert not train_texts & set(data.test.texts)                 # the test set never leaks into training
    for seed in cfg.bios.probe_seeds:
        amb = data.ambiguous[seed]
        assert (amb.profession == amb.gender).all() and len(data.pairs[seed].female) == len(amb)
    assert len(set(data.all_texts())) == len(data.all_texts())


def _labelled(n_per_group=5):
    prof = np.repeat([0, 0, 1, 1], n_per_group)
    gender = np.tile(np.repeat([0, 1], n_per_group), 2)
    docs = [make_document(f"doc {i}", "t", None, {}) for i in range(len(prof))]
    return LabelledSet("test", docs, ("scholar", "performer"), prof, gender, np.zeros(len(prof), bool))


def test_table_aggregates_runs_per_row_and_keeps_the_paper_reference_apart():
    test = _labelled()
    cfg = load_profile("smoke").bios
    runs = [Run("Original", s, test.gender.copy()) for s in (0, 1)]                   # reads gender only
    runs += [Run("GSAE SHIFT", s, test.profession.copy(), sae="GSAE", features=[1, 2]) for s in (0, 1)]
    rows = table(runs, ["Original", "Oracle", "GSAE SHIFT"], test, cfg)
    assert [r["row"] for r in rows] == ["Original", "GSAE SHIFT"]                     # rows without runs are left out
    original, shift = rows
    assert original["worst_group_acc"]["mean"] == 0.0 and original["gender_acc"]["mean"] == 1.0
    assert shift["worst_group_acc"]["mean"] == 1.0 and shift["n_features"]["mean"] == 2
    assert shift["paper_worst_group_acc"] == PAPER_REFERENCE["worst_group_acc"]["GSAE SHIFT"]
    assert original["paper_worst_group_acc"] is None
    assert "Random + retrain" in row_order([]) and table_rows({"table": rows})[1]["features"] == "2.0"


def test_figures_are_drawn_from_the_results_file(tmp_cache):
    test = _labelled()
    cfg = load_profile("smoke").bios
    runs = [Run(row, 0, test.profession.copy(), features=[0]) for row in ("Original", "GSAE SHIFT", "SSAE SHIFT + retrain")]
    results = {
        "profile": "smoke", "bios_config": cfg.to_dict(), "table": table(runs, [r.row for r in runs], test, cfg),
        "data": {"source": "smoke_bios", "test": test.card()},
        "scr": {"summary": [{"label": label, "n": n, "scr": {"mean": 0.1 * n, "std": 0.01, "n": 2},
                             "acc_ablated": {"mean": 0.9, "std": 0.0, "n": 2}} for label in ("GSAE", "SSAE 1/8") for n in (2, 5)]},
    }
    path = results_dir("smoke") / RESULTS_FILE
    write_json_atomic(path, results)
    png = plot_table1_shift(path)
    assert png.name == "table1_shift.png" and png.with_suffix(".pdf").exists()
    meta = json.loads((figures_dir("smoke") / "table1_shift.meta.json").read_text())
    assert meta["notebook"] == "07_bias_in_bios" and meta["results_file"] == RESULTS_FILE
    assert plot_scr(path).name == "07_scr.png"


def test_sae_and_scr_tables_read_the_saved_results():
    from ssae_utils.pipeline.bias_in_bios import sae_rows, scr_rows

    results = {"saes": {"GSAE": {"d_sae": 64, "l0": 10.0, "fvu": 0.2},
                        "SSAE seed 0": {"d_sae": 64, "l0": 9.0, "fvu": 0.18, "training_docs": 12, "selection": {"total_tokens": 900}}},
               "scr": {"summary": [{"label": "GSAE", "n": 2, "scr": {"mean": 0.1, "std": 0.05}, "acc_ablated": {"mean": 0.9}}]}}
    assert sae_rows(results) == [
        {"sae": "GSAE", "d_sae": 64, "L0": 10.0, "FVU": 0.2, "training docs": None, "retrieved tokens": None},
        {"sae": "SSAE seed 0", "d_sae": 64, "L0": 9.0, "FVU": 0.18, "training docs": 12, "retrieved tokens": 900}]
    assert scr_rows(results) == [{"sae": "GSAE", "N": 2, "SCR mean": 0.1, "SCR std": 0.05, "accuracy after ablation": 0.9}]


def test_the_biographies_ssae_trains_with_the_sweeps_recipe():
    from ssae_utils.pipeline.bias_in_bios import bios_finetune_config

    cfg = load_profile("embedded", {"finetune.lr": 3e-4})
    fcfg = bios_finetune_config(cfg, seed=2)
    assert (fcfg.lr, fcfg.batch_size, fcfg.decoder) == (3e-4, cfg.finetune.batch_size, cfg.finetune.decoder)
    assert (fcfg.l1_coefficients, fcfg.steps, fcfg.lr_decay_steps, fcfg.seed) == ((cfg.bios.ssae_lambda,), cfg.bios.ssae_steps,
                                                                                  cfg.bios.ssae_lr_decay_steps, 2)


def test_smoke_stage_07_records_the_probe_layer_selection_and_precondition(tmp_cache):
    from ssae_utils.pipeline.foundation import run_foundation

    cfg = load_profile("smoke")
    run_foundation(cfg)
    results = run_bias_in_bios(cfg)
    saved = json.loads((results_dir("smoke") / RESULTS_FILE).read_text())
    assert saved["model"]["probe_layer"] == 3 and saved["model"]["hook_name"] == "blocks.2.hook_resid_post"
    assert saved["probe_selection"]["picked"]["probe_layer"] == 3
    for card in saved["data"]["ambiguous"].values():              # the probe's training set: real documents only
        assert all(group["swapped"] == 0 for group in card.values())
    original = next(r for r in saved["table"] if r["row"] == "Original")
    lo, hi = original["gender_acc"]["ci"]                           # the path the scorecard reads (C9's precondition)
    assert 0 <= lo <= original["gender_acc"]["mean"] <= hi <= 1 and "bootstrap" in original["gender_acc"]["ci_method"]
    pre = saved["precondition"]
    assert pre["ci"] == [lo, hi] and set(pre["per_seed"]) == {str(s) for s in cfg.bios.probe_seeds}
    assert all("Wilson" in s["ci_method"] and s["ci"][0] <= s["gender_acc"] <= s["ci"][1] for s in pre["per_seed"].values())


def test_study_ambiguous_sets_hold_no_pronoun_swapped_copies(tmp_cache):
    cfg = load_profile("smoke")
    data = build_study_data(build_corpora(cfg.data), cfg.bios)
    for amb in data.ambiguous.values():
        assert not amb.swapped.any()


def test_profiles_declare_late_probe_layer_candidates():
    for name, hook in (("embedded", 12), ("paper", 12)):
        cfg = load_profile(name)
        assert cfg.model.hook_layer == hook and cfg.bios.probe_layer is None
        assert cfg.bios.probe_layer_candidates == (16, 17)
    paper = load_profile("paper").bios
    assert paper.professions == ("professor", "nurse") and not paper.use_pronoun_swaps
    with pytest.raises(ValueError, match="not both"):
        load_profile("smoke", {"bios.probe_layer": 3})
