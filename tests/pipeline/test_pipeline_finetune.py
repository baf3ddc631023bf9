"""Stage 03 refuses to train on missing or stale selections."""

from __future__ import annotations

import json

import pytest

from ssae_utils.config import load_profile
from ssae_utils.paths import results_dir
from ssae_utils.pipeline import retrieval as stage01
from ssae_utils.pipeline import tracin as stage02
from ssae_utils.pipeline.finetune import load_selections, runs


def test_missing_or_stale_stage02_results_are_refused(tmp_cache):
    cfg = load_profile("smoke")
    key = stage01.inputs_key(cfg)
    sel = {"doc_ids": ["a"], "token_counts": [1], "total_tokens": 1, "budget": 1}
    (results_dir("smoke") / stage01.RESULTS_FILE).write_text(json.dumps(
        {"inputs_key": key, "domains": {"physics": {"selections": {"dense": sel}}}}))
    with pytest.raises(FileNotFoundError, match="--only 02"):
        load_selections(cfg)
    path = results_dir("smoke") / stage02.RESULTS_FILE
    path.write_text(json.dumps({"inputs_key": "old", "domains": {}}))
    with pytest.raises(ValueError, match="rerun notebook 02"):
        load_selections(cfg)
    path.write_text(json.dumps({"inputs_key": key, "domains": {"physics": {"selections": {"dense_tracin": sel}}}}))
    assert set(load_selections(cfg)["physics"]) == {"dense", "dense_tracin"}


def test_runs_add_term_only_where_configured():
    cfg = load_profile("smoke")
    physics = runs(cfg, "physics")
    assert ("dense", 500.0) in physics and ("dense", 1e9) in physics and ("general", 0.0) in physics
    assert all(t == 0.0 for _, t in runs(cfg, "toxicity"))
