"""Compare two results files leaf by leaf, leaving out what measures time, not results."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

# timings blocks, wall-clock seconds and throughputs: they differ between any two runs
TIMING = re.compile(r"^(timings|seconds|build_seconds|finished|created)$|_s$|_per_s$|_ms_per_token$")


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf; timing keys (``TIMING``) and their subtrees are left out."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not TIMING.search(str(key)):
                yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{path}[{i}]")
    else:
        yield path, obj


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def leaf_differences(a: Any, b: Any) -> list[str]:
    """Every leaf that differs, is missing on one side, or has another type; [] when equal."""
    la, lb = dict(leaves(a)), dict(leaves(b))
    out = [f"{k}: {la.get(k, '<missing>')!r} != {lb.get(k, '<missing>')!r}"
           for k in sorted(set(la) | set(lb)) if k not in la or k not in lb or not _same(la[k], lb[k])]
    return out


def results_differences(a: Path, b: Path) -> list[str]:
    return leaf_differences(json.loads(Path(a).read_text()), json.loads(Path(b).read_text()))
