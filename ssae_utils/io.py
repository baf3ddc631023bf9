"""Atomic writes and content hashing: nothing half-written is ever read back as valid."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The rename is atomic on POSIX, so a reader sees either the old file or the complete new
    one, never a partial write (a killed run leaves at most a stray ``.tmp`` file).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise _write_error(target, err) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            # mkstemp creates 0600 files; give the result the permissions a plain open() would
            if tmp_path.exists():
                os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, target)
        except OSError as err:
            raise _write_error(target, err) from err
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_error(target: Path, err: OSError) -> OSError:
    """The same OSError, saying which file could not be written and what to do."""
    what = {errno.ENOSPC: "the disk is full: free space, or point SSAE_CACHE / SSAE_RESULTS at a larger disk",
            errno.EROFS: "the file system is read-only: point SSAE_CACHE / SSAE_RESULTS at a writable folder",
            errno.EACCES: "permission denied: point SSAE_CACHE / SSAE_RESULTS at a folder you can write"}.get(
        err.errno, err.strerror or type(err).__name__)
    return type(err)(err.errno, f"cannot write {target}: {what}")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. It is written by an earlier notebook: run "
            f"`python run_all.py` (or the notebook that produces it) first."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # garbage bytes are not UTF-8 either
        raise ValueError(f"{path} is not valid JSON ({type(err).__name__}: {err}); delete it and rerun "
                         f"the notebook that writes it.") from err


def _json_default(obj: Any) -> Any:
    # numpy / torch scalars and paths show up in results; store them as plain values.
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def stable_hash(obj: Any, length: int = 16) -> str:
    """SHA-256 of a JSON-serialisable object (sorted keys): the key of every cache entry."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
