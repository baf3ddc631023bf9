"""Bad environment and inputs get one-line errors that name the path or knob and the fix."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

import run_all
from ssae_utils.io import write_json_atomic
from ssae_utils.paths import check_folder_variables


def test_folder_variables_that_are_files_or_read_only_are_refused(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=f"SSAE_CACHE={a_file} is a file"):
        check_folder_variables({"SSAE_CACHE": str(a_file)})
    if os.geteuid() != 0:  # root writes anywhere: only a non-root user sees permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot write there"):
            check_folder_variables({"SSAE_RESULTS": str(locked)})


def test_relative_folder_variables_become_absolute_against_the_callers_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_folder_variables({"SSAE_RESULTS": "scratch/results"}) == {"SSAE_RESULTS": str(tmp_path / "scratch" / "results")}


def test_run_all_reports_a_bad_folder_in_one_line(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    monkeypatch.setenv("SSAE_RESULTS", str(a_file))
    assert run_all.main(["--profile", "smoke", "--only", "00"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'x.json'}: the disk is full"):
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert not list(tmp_path.glob(".x.json.*"))          # no temporary file left behind


def test_a_garbled_run_state_is_ignored_with_a_warning(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_bytes(b"\xff\xfe garbage")
    assert run_all.read_state(state) == {}
    assert f"{state} is not valid JSON" in capsys.readouterr().err
    state.write_text(json.dumps(["a", "list"]))
    assert run_all.read_state(state) == {}
    state.write_text(json.dumps({"00_setup": {"fingerprint": "x"}}))
    assert run_all.read_state(state) == {"00_setup": {"fingerprint": "x"}}


def test_a_damaged_autointerp_cache_entry_of_the_wrong_shape_is_ignored(tmp_cache):
    from ssae_utils.autointerp.cache import ResponseCache
    from ssae_utils.autointerp.client import LLMRequest

    cache = ResponseCache()
    request = LLMRequest("m", "s", "u", 8)
    cache.path(request).parent.mkdir(parents=True, exist_ok=True)
    cache.path(request).write_text(json.dumps(["not", "an", "entry"]))
    assert cache.get(request) is None and cache.corrupt == 1


def test_a_wrong_width_sae_in_a_splice_is_named():
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    from ssae_utils.sae.evaluation import sae_splice

    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=4, dtype="float32", device="cpu"))
    with pytest.raises(ValueError, match="d_model=6 but the SAE expects d_in=8"):
        sae_splice(sae)(torch.zeros(1, 3, 6))
