"""A full or read-only disk: every atomic writer fails with one error naming the file and the
fix, and leaves neither a partial target nor a temporary file behind."""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from ssae_utils import io as ssae_io

FIX = {errno.ENOSPC: "the disk is full: free space, or point SSAE_CACHE / SSAE_RESULTS at a larger disk",
       errno.EROFS: "the file system is read-only: point SSAE_CACHE / SSAE_RESULTS at a writable folder"}


def _writers():
    """name -> (write(folder) -> target path): the atomic writers every cache and result goes through."""
    from ssae_utils.data.documents import Document, save_jsonl

    def npy(folder):
        with ssae_io.atomic_path(folder / "a.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ones(8, dtype=np.float32))

    return {
        "json": lambda folder: ssae_io.write_json_atomic(folder / "x.json", {"a": 1}),
        "bytes": lambda folder: ssae_io.write_bytes_atomic(folder / "x.bin", b"\0" * 64),
        "text": lambda folder: ssae_io.write_text_atomic(folder / "x.txt", "text"),
        "jsonl": lambda folder: save_jsonl([Document("d", "some text", "t")], folder / "s.jsonl"),
        "npy": npy,
    }


TARGETS = {"json": "x.json", "bytes": "x.bin", "text": "x.txt", "jsonl": "s.jsonl", "npy": "a.npy"}


def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _fail_writing_tmp(code, real_open):
    """open() that fails for the writers' temporary files only (as a full disk fails a write)."""
    def fake(file, mode="r", *args, **kwargs):
        if str(file).endswith(".tmp") and any(c in mode for c in "wa"):
            raise OSError(code, os.strerror(code))
        return real_open(file, mode, *args, **kwargs)
    return fake


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("where", ["rename", "write", "create"])
@pytest.mark.parametrize("writer", list(TARGETS))
def test_a_failed_write_names_the_file_and_the_fix_and_leaves_nothing(tmp_path, monkeypatch, code, where, writer):
    write = _writers()[writer]
    if where == "rename":
        monkeypatch.setattr(os, "replace", _fail_with(code))
    elif where == "write":
        fake = _fail_writing_tmp(code, builtins.open)
        monkeypatch.setattr(builtins, "open", fake)
        monkeypatch.setattr(io, "open", fake)
    else:  # the temporary file cannot even be created (a read-only folder)
        monkeypatch.setattr(tempfile, "mkstemp", _fail_with(code))
    with pytest.raises(OSError) as info:
        write(tmp_path)
    assert str(info.value) == f"[Errno {code}] cannot write {tmp_path / TARGETS[writer]}: {FIX[code]}"
    assert info.value.errno == code
    assert list(tmp_path.iterdir()) == []           # no partial target, no temporary file


def test_an_existing_file_survives_a_failed_rewrite(tmp_path, monkeypatch):
    ssae_io.write_json_atomic(tmp_path / "x.json", {"old": 1})
    monkeypatch.setattr(os, "replace", _fail_with(errno.ENOSPC))
    with pytest.raises(OSError, match="disk is full"):
        ssae_io.write_json_atomic(tmp_path / "x.json", {"new": 2})
    assert ssae_io.read_json(tmp_path / "x.json") == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 64 KiB tmpfs (root only, where the container allows mounts; skipped otherwise)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_real_full_and_then_read_only_tmpfs(small_tmpfs):
    target = small_tmpfs / "big.bin"
    with pytest.raises(OSError, match=f"cannot write {target}: the disk is full") as info:
        ssae_io.write_bytes_atomic(target, b"\0" * (1 << 20))
    assert info.value.errno == errno.ENOSPC and list(small_tmpfs.iterdir()) == []
    ssae_io.write_json_atomic(small_tmpfs / "small.json", {"a": 1})          # room for a small file
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(OSError, match=f"cannot write {small_tmpfs / 'small.json'}: the file system is read-only"):
        ssae_io.write_json_atomic(small_tmpfs / "small.json", {"a": 2})
    assert ssae_io.read_json(small_tmpfs / "small.json") == {"a": 1}
