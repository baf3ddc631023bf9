"""Converted checkpoints appear complete or not at all."""

from __future__ import annotations

import pytest

from ssae_utils.model.storage import atomic_dir, read_meta, write_meta


def test_atomic_dir_publishes_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights.bin").write_bytes(b"half")
            raise RuntimeError("killed mid-conversion")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"all")
        write_meta(tmp, {"ok": True})
    assert (target / "weights.bin").read_bytes() == b"all" and read_meta(target) == {"ok": True}


def test_atomic_dir_keeps_a_copy_finished_first(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        write_meta(tmp, {"first": True})
        with atomic_dir(target) as other:  # a concurrent writer finishes before us
            write_meta(other, {"second": True})
    assert read_meta(target) == {"second": True} and len(list(tmp_path.iterdir())) == 1


def test_read_meta_of_a_missing_folder_is_none(tmp_path):
    assert read_meta(tmp_path / "nothing") is None
