"""Reading earlier stages' results, and the GSAE's input space."""

from __future__ import annotations

import json

import pytest

from ssae_utils.paths import results_dir
from ssae_utils.pipeline.upstream import gsae_input_space, read_results


def test_missing_results_name_the_notebook_that_writes_them(tmp_cache):
    with pytest.raises(FileNotFoundError, match=r"run notebook 05 first \(python run_all.py --profile smoke --only 05\)"):
        read_results("smoke", "05_tail_tokens.json")
    (results_dir("smoke") / "05_tail_tokens.json").write_text(json.dumps({"ok": 1}))
    assert read_results("smoke", "05_tail_tokens.json") == {"ok": 1}


def test_gsae_input_space_from_training_info():
    scale, threshold = gsae_input_space({"norm_scaling_factor": 0.5, "outliers": {"median_norm": 10.0}}, 3.0)
    assert scale == 0.5 and threshold.limit == 30.0
    assert gsae_input_space({"norm_scaling_factor_estimated": 2.0}, 3.0) == (2.0, None)   # pretrained: no threshold
    assert gsae_input_space({}, None) == (1.0, None)
