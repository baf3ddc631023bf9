"""Rows from a Hugging Face dataset, or from a local file with the same columns.

``path`` is either a hub name (``"Skylion007/openwebtext"``), read with
``datasets.load_dataset(..., streaming=True)`` so nothing larger than needed is downloaded,
or a local file / folder (``.jsonl``, ``.json``, ``.parquet``, ``.csv``), read with the
matching packaged builder. A local folder holds one file per split (``train.jsonl``,
``test.jsonl``). Tests point ``path`` at small fixtures and never reach the network.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def _local_file(path: Path, split: str) -> Path:
    if path.is_file():
        return path
    for ext in _BUILDERS:
        candidate = path / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path} has no file for split {split!r} "
                            f"(expected {split}.jsonl / .json / .parquet / .csv)")


def is_local(path: str) -> bool:
    return Path(path).exists()


def _looks_like_a_file(path: str) -> bool:
    # Hub names are "owner/name"; a path with a data-file suffix or a leading / . ~ is local.
    return path.startswith(("/", ".", "~")) or Path(path).suffix in _BUILDERS


def iter_rows(path: str, split: str = "train", name: str | None = None,
              revision: str | None = None, max_rows: int | None = None) -> Iterator[dict[str, Any]]:
    """Dict rows of one split, streamed; at most ``max_rows`` of them."""
    from datasets import load_dataset  # heavy import, only for the paper profile / its tests

    if not is_local(path) and _looks_like_a_file(path):
        raise FileNotFoundError(f"data file {path!r} does not exist (a local path was given, "
                                f"not a Hugging Face dataset name 'owner/name')")
    if is_local(path):
        file = _local_file(Path(path), split)
        builder = _BUILDERS.get(file.suffix)
        if builder is None:
            raise ValueError(f"{file}: unsupported file type {file.suffix!r}; "
                             f"use one of {sorted(_BUILDERS)}")
        ds = load_dataset(builder, data_files={split: str(file)}, split=split, streaming=True)
    else:
        try:
            ds = load_dataset(path, name, split=split, revision=revision, streaming=True)
        except Exception as err:  # network, auth or a wrong name: say what to do
            raise RuntimeError(
                f"could not open the Hugging Face dataset {path!r} (split {split!r}): {err}\n"
                f"The paper profile needs network access to the Hugging Face Hub, or set "
                f"DataConfig.source_options[<source>]['path'] to a local copy "
                f"(.jsonl/.parquet/.csv file, or a folder with one file per split).") from err
    rows = iter(ds)
    return itertools.islice(rows, max_rows) if max_rows is not None else rows


def require_columns(row: dict[str, Any], columns: list[str] | tuple[str, ...], path: str,
                    source: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise KeyError(f"dataset {path!r} has no column(s) {missing} (it has {sorted(row)}); "
                       f"set DataConfig.source_options[{source!r}] to the right column names.")
