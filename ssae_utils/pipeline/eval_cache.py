"""Content-addressed cache of stage 03's evaluation: one JSON entry per (SAE, evaluation set).

Evaluating an SSAE (the patched CE on every split: the layers after the hook and the
262k-way unembedding once per SAE) costs more than training it on the embedded profile, and
its result depends only on

* the SAE's weights: its cache folder and the digests in its ``checksums.json`` (written
  with every saved SAE, so a retrained SAE with other bits gets another key),
* the evaluation set: ``EvalSet.key`` (activation store, i.e. model, dtype and hook; the
  SAE-metric documents; the outlier limit), the patched-CE documents, whether the patched CE
  is computed, and the batch size (batching changes the last bits of a float sum),
* this module's ``EVAL_VERSION`` (bump it when the metrics change).

So a rerun (``run_all.py --force``, a stage interrupted after training, or a torchrun rank
that evaluated its share: ``ssae_utils.dist``) reads them instead of computing them again.
The clean model's CE on a set is one more entry (``clean_key``). An entry that cannot be
read or does not hold what it should (finite numbers, one CE sum per document) is computed
again, with a warning; entries are written atomically.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ssae_utils.integrity import CHECKSUMS
from ssae_utils.io import stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir, cache_root

log = logging.getLogger(__name__)

EVAL_VERSION = "1"
_SAE_KEYS = ("l0", "fvu", "dead_features", "tokens")


def sae_identity(folder: str | Path) -> str:
    """The identity of the SAE saved in ``folder`` (cache-relative or absolute): the folder
    and its recorded file digests. An SAE without ``checksums.json`` has none (not cached)."""
    path = Path(folder)
    path = path if path.is_absolute() else cache_root() / path
    listing = path / CHECKSUMS
    if not listing.exists():
        return ""
    return stable_hash({"folder": str(folder), "digests": json.loads(listing.read_text(encoding="utf-8"))})


def set_identity(data: Any, batch_size: int, patched_ce: bool) -> str:
    """The identity of an ``EvalSet`` as evaluated with these settings ("" when it has no key)."""
    if not getattr(data, "key", ""):
        return ""
    return stable_hash({"stats": data.key, "ce_docs": list(data.doc_ids or []), "ce_tokens": data.ce_tokens,
                        "batch_size": int(batch_size), "patched_ce": bool(patched_ce), "version": EVAL_VERSION})


def entry_key(sae_id: str, set_id: str) -> str:
    return stable_hash({"sae": sae_id, "set": set_id}) if sae_id and set_id else ""


def clean_key(set_id: str) -> str:
    return stable_hash({"clean": set_id}) if set_id else ""


def _path(key: str) -> Path:
    return cache_dir("evals") / f"{key}.json"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(entry: Any, patched_ce: bool, n_docs: int | None, clean: bool) -> str:
    """What is wrong with ``entry`` ("" when nothing)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
        return "not an evaluation entry"
    metrics, doc_ce = entry["metrics"], entry.get("doc_ce")
    needed = ("ce",) if clean else (*_SAE_KEYS, *(("ce", "ppl") if patched_ce else ()))
    bad = [k for k in needed if not _finite(metrics.get(k))]
    if bad:
        return f"missing or non-finite {', '.join(bad)}"
    if doc_ce is not None and (not isinstance(doc_ce, list) or not all(_finite(v) for v in doc_ce)
                               or (n_docs is not None and len(doc_ce) != n_docs)):
        return f"its per-document CE sums are not {n_docs} finite numbers"
    return ""


def load(key: str, patched_ce: bool, n_docs: int | None, clean: bool = False) -> dict[str, Any] | None:
    """The entry under ``key`` (``{"metrics": ..., "doc_ce": [...] | None}``), or None when
    absent or damaged (then it is computed again)."""
    if not key:
        return None
    path = _path(key)
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        log.warning("evaluation cache entry %s cannot be read (%s); evaluating again", path, err)
        return None
    problem = _check(entry, patched_ce, n_docs, clean)
    if problem:
        log.warning("evaluation cache entry %s is damaged (%s); evaluating again", path, problem)
        return None
    return entry


def save(key: str, metrics: dict[str, Any], doc_ce: Sequence[float] | None) -> None:
    if key:
        write_json_atomic(_path(key), {"metrics": dict(metrics), "doc_ce": None if doc_ce is None else list(doc_ce)})
