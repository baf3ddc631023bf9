"""Atomic directory writes for converted checkpoints: a folder appears complete or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ssae_utils.io import write_json_atomic

META_FILE = "ssae_meta.json"


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; rename it onto ``target`` on success.

    A killed conversion leaves only a ``.tmp`` folder (removed on the next failure or ignored),
    never a half-written checkpoint under the real name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
    try:
        yield tmp
        if target.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    write_json_atomic(folder / META_FILE, meta)


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The checkpoint's metadata, or None if the folder is missing or incomplete."""
    path = Path(folder) / META_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
