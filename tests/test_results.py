"""The results schemas: every committed embedded file round-trips key for key; reading is strict.

The committed ``results/embedded`` files were written before ``schema_version`` existed, so
the round-trip test adds ``schema_version`` to each loaded dict (as the first key, where
``to_dict`` puts it) and compares with that; everything else must come back unchanged. The
readers themselves never accept a file without a version (``test_old_or_missing_version``):
accepting one only here keeps the check honest about what a rerun would write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssae_utils.results import (
    ALL_FILES,
    BY_FILE,
    EXPLANATIONS_FILE,
    STAGES,
    FinetuneResults,
    ResultsSchemaError,
    SetupResults,
    read_stage,
    results_path,
    write_results,
)

EMBEDDED = Path(__file__).resolve().parents[1] / "results" / "embedded"


def _embedded(stage) -> dict:
    data = json.loads((EMBEDDED / stage.FILE).read_text(encoding="utf-8"))
    return {"schema_version": stage.SCHEMA_VERSION, **data}


def test_every_embedded_results_file_has_a_schema():
    committed = {p.name for p in EMBEDDED.iterdir() if p.suffix in (".json", ".csv", ".md", ".tex")}
    assert committed == set(ALL_FILES)
    assert EXPLANATIONS_FILE in committed
    assert [s.NOTEBOOK for s in STAGES] == [f"{i:02d}" for i in range(9)]
    assert all(s.FILE.startswith(s.NOTEBOOK + "_") for s in STAGES)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.FILE)
def test_embedded_results_round_trip_key_for_key(stage):
    data = _embedded(stage)
    back = stage.from_dict(data).to_dict()
    assert back == data
    assert list(back) == list(data)   # same key order too: a rewritten file diffs cleanly
    assert json.dumps(back, sort_keys=False) == json.dumps(data, sort_keys=False)


def test_typed_parts_give_attribute_access():
    setup = SetupResults.from_dict(_embedded(SetupResults))
    assert setup.gsae.folder.startswith("saes/gsae/") and "norm_scaling_factor" in setup.gsae.training
    finetune = FinetuneResults.from_dict(_embedded(FinetuneResults))
    row = finetune.rows[0]
    assert row.lam == row.to_dict()["lambda"] and row.metric("test", "ppl") == row.to_dict()["test_ppl"]
    assert finetune.gsae["physics"]["test"].gsae["ppl"] > 0
    first = BY_FILE["01_retrieval.json"].from_dict(_embedded(BY_FILE["01_retrieval.json"]))
    physics = first.domains["physics"]
    assert physics.selections["dense"].doc_ids and len(physics.prefilter["bm25"].doc_ids) == len(physics.prefilter["bm25"].scores)


def test_unknown_top_level_key_names_file_key_and_notebook():
    data = {**_embedded(FinetuneResults), "surprise": 1}
    with pytest.raises(ResultsSchemaError) as err:
        FinetuneResults.from_dict(data)
    msg = str(err.value)
    assert "03_finetune.json" in msg and "'surprise'" in msg
    assert "python run_all.py --profile embedded --only 03" in msg
    assert isinstance(err.value, ValueError)


def test_unknown_nested_key_names_its_path():
    data = _embedded(SetupResults)
    data["gsae"] = {**data["gsae"], "extra": 1}
    with pytest.raises(ValueError, match=r"00_setup.json: unknown key 'extra' in GsaeBlock .*at gsae\).*--only 00"):
        SetupResults.from_dict(data)
    rows = _embedded(FinetuneResults)
    rows["rows"] = [{**rows["rows"][0], "not_a_metric": 1}]
    with pytest.raises(ValueError, match=r"unknown key 'not_a_metric' in FinetuneRow .*at rows\[0\]"):
        FinetuneResults.from_dict(rows)


def test_missing_key_names_file_key_and_notebook():
    data = _embedded(FinetuneResults)
    del data["rows"]
    with pytest.raises(ResultsSchemaError, match=r"03_finetune.json: missing key 'rows' in FinetuneResults.*--profile embedded --only 03"):
        FinetuneResults.from_dict(data)
    setup = _embedded(SetupResults)
    setup["gsae"] = {k: v for k, v in setup["gsae"].items() if k != "folder"}
    with pytest.raises(ResultsSchemaError, match=r"missing key 'folder' in GsaeBlock \(at gsae\)"):
        SetupResults.from_dict(setup)


def test_optional_keys_may_be_absent_or_present():
    data = _embedded(SetupResults)
    without = {k: v for k, v in data.items() if k != "pool_removals"}
    assert SetupResults.from_dict(without).to_dict() == without            # files from before the key
    with_removals = {**without, "pool_removals": {"physics": 2}}
    assert SetupResults.from_dict(with_removals).to_dict() == with_removals


@pytest.mark.parametrize("version", [None, 0])
def test_old_or_missing_version_says_to_rerun_the_notebook(version):
    data = _embedded(FinetuneResults)
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(ResultsSchemaError) as err:
        FinetuneResults.from_dict(data)
    msg = str(err.value)
    assert "03_finetune.json" in msg and "older version of notebook 03" in msg
    assert ("no schema_version" if version is None else "schema version 0") in msg
    assert "python run_all.py --profile embedded --only 03" in msg


def test_newer_version_is_refused_too():
    data = {**_embedded(FinetuneResults), "schema_version": FinetuneResults.SCHEMA_VERSION + 1}
    with pytest.raises(ResultsSchemaError, match="newer than this code's"):
        FinetuneResults.from_dict(data)


def test_write_then_read_stage(tmp_cache):
    setup = SetupResults.from_dict({**_embedded(SetupResults), "profile": "smoke"})
    path = write_results("smoke", setup)
    assert path == results_path("smoke", SetupResults)
    saved = json.loads(path.read_text())
    assert next(iter(saved)) == "schema_version" and saved["schema_version"] == SetupResults.SCHEMA_VERSION
    assert read_stage("smoke", SetupResults) == setup
    with pytest.raises(ValueError, match="profile 'smoke' written under profile 'other'"):
        write_results("other", setup)


def test_read_stage_of_a_missing_file_names_the_notebook(tmp_cache):
    with pytest.raises(FileNotFoundError, match=r"run notebook 03 first \(python run_all.py --profile smoke --only 03\)"):
        read_stage("smoke", FinetuneResults)


def test_read_stage_of_an_old_file_names_the_profile(tmp_cache):
    path = results_path("smoke", FinetuneResults)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _embedded(FinetuneResults)
    del data["schema_version"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"--profile smoke --only 03"):
        read_stage("smoke", FinetuneResults)
