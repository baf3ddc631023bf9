"""Integrity of cached artifacts: a fast digest written last, checked when read.

Every artifact folder the pipeline caches (SAEs, activation shards) records an xxh3-128
digest of each of its files when it is written (xxhash runs at several GB/s, so checking
stays on by default; ``bench/bench_integrity.py`` measures it). A read that finds a file
changed since (bytes flipped, truncated, edited) raises ``CorruptCacheError`` with the path;
callers that can recompute the artifact do so, the others say which notebook rebuilds it.
Checks are remembered per process by (path, size, mtime), so a file is hashed once per run.

The same rule covers every cached artifact, each in its own module: SAE folders
(``checksums.json``), activation shards and float16 embedding shards (digests in their
manifests), pool embeddings (``<key>.json`` beside the ``.npy``), corpora splits (the corpora
manifest), the token-count map (a digest of its counts inside the file), autointerp answers
(a checksum and a schema check per entry). Entries written before digests existed are
*legacy*: they are accepted when their content checks pass (shape, dtype, finiteness, norms,
parsing). Embedding and corpora entries then get their digests recorded, so any later damage
is caught (a read-only cache just skips that); the token-count map gets one on its next write;
an SAE folder without ``checksums.json`` stays content-checked (finite weights) only. A legacy
entry damaged before its first check but still passing its content checks cannot be told apart
from a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterable

import xxhash

from ssae_utils.io import write_json_atomic

CHECKSUMS = "checksums.json"
_CHUNK = 8 << 20
_verified: set[tuple[str, int, int, str]] = set()
_lock = threading.Lock()


class CorruptCacheError(RuntimeError):
    """A cached file does not match what was written (or cannot be read)."""


def file_digest(path: Path, algo: str = "xxh3_128") -> str:
    """Hex digest of a file: xxh3-128 (fast, what new entries record) or sha256 (older entries)."""
    h = xxhash.xxh3_128() if algo == "xxh3_128" else hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def verify_file(path: Path, digest: str, algo: str = "xxh3_128") -> None:
    """Raise ``CorruptCacheError`` unless ``path`` has ``digest`` (each file hashed once per process)."""
    path = Path(path)
    if not path.exists():
        raise CorruptCacheError(f"{path} is missing")
    key = (*_stamp(path), digest)
    with _lock:
        if key in _verified:
            return
    if file_digest(path, algo) != digest:
        raise CorruptCacheError(f"{path} does not match its checksum (damaged or edited since it was written)")
    with _lock:
        _verified.add(key)


def write_checksums(folder: Path, files: Iterable[str]) -> None:
    """Record the digest of ``files`` (names inside ``folder``) in ``folder/checksums.json``."""
    folder = Path(folder)
    write_json_atomic(folder / CHECKSUMS, {name: file_digest(folder / name) for name in sorted(files)})


def verify_folder(folder: Path) -> bool:
    """Check every file listed in ``folder/checksums.json``; False when the folder has no list
    (written before checksums existed: nothing to check against)."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.exists():
        return False
    try:
        digests = json.loads(listing.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptCacheError(f"{listing} cannot be read ({err})") from err
    for name, digest in digests.items():
        verify_file(folder / name, digest)
    return True
