"""Lineage: results made with other knobs, or from rewritten upstream results, are refused."""

from __future__ import annotations

import json

import pytest

from ssae_utils.config import load_profile
from ssae_utils.lineage import LineageError, config_for, differing_knobs
from ssae_utils.paths import results_dir
from ssae_utils.results import FinetuneResults, SetupResults, read_stage, write_results
from tests.results_files import write_stage_file


def test_differing_knobs_are_dotted_and_show_both_values():
    old = {"gsae": {"l1_coefficient": 2.0, "d_sae": 8}, "seed": 0}
    new = {"gsae": {"l1_coefficient": 1.0, "d_sae": 8}, "seed": 0, "extra": {"a": 1}}
    assert differing_knobs(old, new) == ["extra: \"<absent>\" -> {\"a\": 1} (this run)", "gsae.l1_coefficient: 2.0 -> 1.0 (this run)"]
    assert differing_knobs(old, old) == []


def test_a_stage_sees_only_the_sections_of_its_own_and_earlier_stages():
    cfg = load_profile("smoke").to_dict()
    assert "finetune" not in config_for("00", cfg) and "finetune" in config_for("03", cfg) and "bios" not in config_for("06", cfg)


def test_results_made_with_other_knobs_are_refused_naming_the_knob_and_the_notebook(tmp_cache):
    made = load_profile("smoke", {"gsae.l1_coefficient": 2.0})
    write_stage_file("smoke", SetupResults, cfg=made)
    assert read_stage(made, SetupResults).lineage["config"]["gsae"]["l1_coefficient"] == 2.0
    with pytest.raises(LineageError, match=r"gsae\.l1_coefficient: 2\.0 -> 1\.0 \(this run\).*--from 00"):
        read_stage(load_profile("smoke"), SetupResults)
    # a knob of a later stage does not concern stage 00's results
    read_stage(load_profile("smoke", {"gsae.l1_coefficient": 2.0, "finetune.lr": 0.5}), SetupResults)
    read_stage("smoke", SetupResults)                    # by profile name: the schema only (tests, plots)


def test_results_made_from_rewritten_upstream_results_are_refused(tmp_cache):
    cfg = load_profile("smoke")
    setup = write_stage_file("smoke", SetupResults, cfg=cfg)
    write_stage_file("smoke", FinetuneResults, cfg=cfg)
    read_stage(cfg, FinetuneResults)                      # made from the 00_setup.json on disk
    data = json.loads(setup.read_text())
    data["gsae"]["heldout"]["l0"] = 1.0                    # 00 rerun since (e.g. with another GSAE)
    setup.write_text(json.dumps(data))
    with pytest.raises(LineageError, match="other versions of 00_setup.json.*--from 03"):
        read_stage(cfg, FinetuneResults)


def test_write_results_stamps_the_lineage_and_a_file_without_one_is_refused(tmp_cache):
    cfg = load_profile("smoke")
    path = write_stage_file("smoke", SetupResults, cfg=cfg)
    record = read_stage(cfg, SetupResults)
    write_results(cfg, record)
    assert json.loads(path.read_text())["lineage"]["config"] == config_for("00", cfg.to_dict())
    data = json.loads(path.read_text())
    del data["lineage"]
    path.write_text(json.dumps(data))
    with pytest.raises(LineageError, match="records no lineage"):
        read_stage(cfg, SetupResults)
    assert (results_dir("smoke") / "00_setup.json").exists()
