"""Pool embeddings as memory-mapped shards on disk (``retrieval.embedding_dtype``).

``embed_to_shards(embedder, texts, dtype="float16", shard_docs=262_144)`` embeds ``texts``
``shard_docs`` at a time and writes each shard as ``shard_00000.npy`` ... (atomically, so a
killed run keeps every finished shard and resumes from the first missing one), then a
``manifest.json`` naming the shards, their rows, their xxh3-128 digests, the dtype and the
embedder identity. Opening a cached folder checks every shard against its digest (once per
process; a shard a stage reads is read whole anyway); a damaged shard is re-embedded with a
warning, and so is a finished shard that fails its content check (shape, finiteness, unit
norm) on resume. A manifest without digests (older entries) is accepted if every shard passes
the content check, and rewritten with digests. The
folder is ``<cache>/embeddings/<embedder>/shards-<key>/``, keyed like ``embed_cached``
(embedder identity, SHA-256 of the texts, their number) plus the dtype and shard size.

Size: ``n x dim x 2`` bytes in float16 (OpenWebText, 8M documents x 768 (Contriever): 12 GB,
half of float32); RAM: one shard's float32 embeddings while writing, nothing while reading
(``iter_blocks`` reads memory-mapped rows a block at a time; ``topk.blockwise_topk``).

float16 keeps ~3 significant digits: a stored unit vector's norm is 1 within ~5e-4 and a
cosine moves by at most ~1e-3; rows are *not* renormalized after rounding, so the stored
vectors are exactly what faiss or the blockwise search see. ``float32`` stays the default
(the embedded profile's single ``.npy`` from ``embed_cached``, bit-identical results).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ssae_utils.integrity import CorruptCacheError, file_digest, verify_file
from ssae_utils.io import atomic_path, stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir
from ssae_utils.retrieval.embedders import EmbeddingCacheError, texts_digest
from ssae_utils.retrieval.tokenize import check_texts

log = logging.getLogger(__name__)

__all__ = ["EmbeddingShards", "embed_to_shards", "embed_pool", "shards_folder", "shard_plan", "finished_shard",
           "write_shard", "SHARD_DTYPES"]

SHARD_DTYPES = ("float32", "float16")
NORM_ATOL = {"float32": 1e-3, "float16": 2e-3}


@dataclass
class EmbeddingShards:
    """Read-only view of a shard folder: ``shape``, ``dtype``, ``iter_blocks``, ``to_array``."""

    folder: Path
    files: list[str]
    rows: list[int]
    dim: int
    dtype: str

    @property
    def shape(self) -> tuple[int, int]:
        return (int(sum(self.rows)), self.dim)

    def __len__(self) -> int:
        return self.shape[0]

    def shard(self, i: int) -> np.ndarray:
        return np.load(self.folder / self.files[i], mmap_mode="r", allow_pickle=False)

    def iter_blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start row, rows) of at most ``block_rows`` rows, memory-mapped, in pool order."""
        start = 0
        for i in range(len(self.files)):
            arr = self.shard(i)
            for s in range(0, arr.shape[0], block_rows):
                yield start + s, arr[s:s + block_rows]
            start += arr.shape[0]

    def to_array(self, dtype: str = "float32") -> np.ndarray:
        """Everything in memory (small pools; faiss): n x dim x 4 bytes in float32."""
        return np.concatenate([np.asarray(self.shard(i), dtype=dtype) for i in range(len(self.files))])

    @classmethod
    def open(cls, folder: Path) -> "EmbeddingShards":
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        return cls(Path(folder), manifest["files"], manifest["rows"], manifest["dim"], manifest["dtype"])


def shards_folder(embedder: Any, texts: Sequence[str], dtype: str, shard_docs: int) -> Path:
    key = stable_hash({"embedder": embedder.identity(), "texts": texts_digest(texts), "n": len(texts),
                       "dtype": dtype, "shard_docs": shard_docs})
    return cache_dir("embeddings", embedder.name) / f"shards-{key}"


def _check_shard(arr: np.ndarray, rows: int, dim: int, dtype: str, what: str) -> None:
    if arr.dtype != np.dtype(dtype) or arr.shape != (rows, dim):
        raise EmbeddingCacheError(f"{what} holds a {arr.dtype} array of shape {arr.shape}, expected "
                                  f"{dtype} ({rows}, {dim})")
    x = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(x)) or not np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=NORM_ATOL[dtype]):
        raise EmbeddingCacheError(f"{what} holds non-finite or non-unit-norm rows")


def embed_to_shards(embedder: Any, texts: Sequence[str], *, dtype: str = "float16",
                    shard_docs: int = 262_144, recompute: bool = False) -> EmbeddingShards:
    """Embed ``texts`` into memory-mapped ``dtype`` shards (cached; see the module docstring)."""
    if dtype not in SHARD_DTYPES:
        raise ValueError(f"retrieval.embedding_dtype must be one of {SHARD_DTYPES}, not {dtype!r}")
    if not isinstance(shard_docs, int) or shard_docs < 1:
        raise ValueError(f"retrieval.embedding_shard_docs must be an int >= 1, not {shard_docs!r}")
    texts = check_texts(texts)
    if not texts:
        raise ValueError("nothing to embed: the pool is empty")
    folder = shards_folder(embedder, texts, dtype, shard_docs)
    manifest = folder / "manifest.json"
    if manifest.exists() and not recompute:
        try:
            return _open_checked(folder, (len(texts), embedder.dim), dtype, shard_docs)
        except (_BadShard, EmbeddingCacheError, ValueError, KeyError, TypeError) as err:
            # the damaged shard goes; the resume below re-embeds it and checks the others
            log.warning("damaged embedding shards in %s: %s; embedding the damaged part again", folder, err)
            manifest.unlink(missing_ok=True)
            for bad in getattr(err, "bad_files", ()):
                (folder / bad).unlink(missing_ok=True)
    files, rows, digests = [], [], {}
    for i, (name, span) in enumerate(shard_plan(len(texts), shard_docs)):
        chunk = texts[span]
        path = folder / name
        files.append(name)
        rows.append(len(chunk))
        if not recompute and finished_shard(path, len(chunk), embedder.dim, dtype):   # resume
            digests[name] = file_digest(path)
            continue
        digests[name] = write_shard(embedder, chunk, path, dtype)
        log.info("embedding shard %d (%d texts) -> %s", i, len(chunk), path)
    _write_manifest(folder, files, rows, embedder.dim, dtype, embedder.identity(), digests)
    return EmbeddingShards.open(folder)


def shard_plan(n: int, shard_docs: int) -> list[tuple[str, slice]]:
    """(file name, rows of the texts) of each shard of ``n`` texts."""
    return [(f"shard_{i:05d}.npy", slice(start, min(start + shard_docs, n)))
            for i, start in enumerate(range(0, n, shard_docs))]


def finished_shard(path: Path, rows: int, dim: int, dtype: str) -> bool:
    """Whether ``path`` holds a finished shard that passes the content check (a resume keeps
    it); a damaged one is warned about and reported unfinished."""
    if not path.exists():
        return False
    try:
        _check_shard(_load_shard(path), rows, dim, dtype, str(path))
        return True
    except EmbeddingCacheError as err:
        log.warning("%s; embedding that shard again", err)
        return False


def write_shard(embedder: Any, chunk: Sequence[str], path: Path, dtype: str) -> str:
    """Embed ``chunk`` and write it as the shard ``path`` in ``dtype``, atomically; returns
    its xxh3-128 digest. Also what each torchrun rank runs on its shards."""
    arr = embedder.embed(chunk)
    _check_shard(arr, len(chunk), embedder.dim, "float32", f"{embedder.name}.embed() output")
    arr = arr.astype(dtype)
    _check_shard(arr, len(chunk), embedder.dim, dtype, f"{embedder.name}.embed() output as {dtype}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, arr, allow_pickle=False)
        return file_digest(tmp)


def _load_shard(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # truncated / not an .npy file
        raise EmbeddingCacheError(f"{path} is not a readable .npy file ({err})") from err


def _write_manifest(folder: Path, files, rows, dim: int, dtype: str, identity: dict, digests: dict) -> None:
    # written last: its presence marks a complete folder
    write_json_atomic(folder / "manifest.json", {"files": files, "rows": rows, "dim": dim, "dtype": dtype,
                                                 "embedder": identity, "xxh3_128": digests})


class _BadShard(RuntimeError):
    def __init__(self, message: str, bad_files: list[str]):
        super().__init__(message)
        self.bad_files = bad_files


def _open_checked(folder: Path, shape: tuple[int, int], dtype: str, shard_docs: int) -> EmbeddingShards:
    """The cached shards after their digests (or, for a manifest without them, their content)
    are checked; raises naming the damaged files."""
    shards = EmbeddingShards.open(folder)
    if shards.shape != shape or shards.dtype != dtype:
        raise EmbeddingCacheError(f"{folder / 'manifest.json'} describes {shards.shape} {shards.dtype}, expected {shape} {dtype}")
    digests = json.loads((folder / "manifest.json").read_text()).get("xxh3_128")
    bad, errors = [], []
    for name, n in zip(shards.files, shards.rows):
        try:
            if digests is not None:
                verify_file(folder / name, digests[name])
            else:
                _check_shard(_load_shard(folder / name), n, shape[1], dtype, str(folder / name))
        except (CorruptCacheError, EmbeddingCacheError) as err:
            bad.append(name)
            errors.append(str(err))
    if bad:
        raise _BadShard("; ".join(errors[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""), bad)
    if digests is None:  # an older folder whose shards passed the content check: record digests from now on
        log.debug("%s has no shard digests: recording them", folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            _write_manifest(folder, shards.files, shards.rows, shards.dim, shards.dtype, manifest.get("embedder"),
                            {name: file_digest(folder / name) for name in shards.files})
        except OSError as err:  # read-only cache: the shards are still good to read
            log.debug("cannot record the shard digests in %s (%s)", folder, err)
    return shards


def embed_pool(cfg: Any, embedder: Any, texts: Sequence[str]) -> Any:
    """The pool embeddings a ``RetrievalConfig`` asks for: ``embed_cached`` (float32 array,
    ``embedding_dtype="float32"``) or ``embed_to_shards`` (``"float16"`` memory-mapped shards)."""
    if cfg.embedding_dtype == "float32":
        from ssae_utils.retrieval.embedders import embed_cached

        return embed_cached(embedder, texts)
    return embed_to_shards(embedder, texts, dtype=cfg.embedding_dtype, shard_docs=cfg.embedding_shard_docs)
