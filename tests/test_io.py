from __future__ import annotations

import os

import pytest

from ssae_utils.io import atomic_path, read_json, stable_hash, write_json_atomic


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{partial")
            raise RuntimeError("killed")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no stray temp file


def test_atomic_files_get_normal_permissions(tmp_path):
    write_json_atomic(tmp_path / "x.json", [1])
    mode = (tmp_path / "x.json").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_read_json_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run_all.py"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it and rerun"):
        read_json(tmp_path / "bad.json")


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
