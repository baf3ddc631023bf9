"""Results files for tests: the committed embedded ones, stamped with the current schema
version and with the keys a test cares about replaced (the schemas refuse partial files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssae_utils.paths import results_dir

EMBEDDED = Path(__file__).resolve().parents[1] / "results" / "embedded"


def embedded(stage: Any, **overrides: Any) -> dict[str, Any]:
    """``results/embedded/<stage.FILE>`` as the current code would write it, with ``overrides``."""
    data = json.loads((EMBEDDED / stage.FILE).read_text(encoding="utf-8"))
    return {"schema_version": stage.SCHEMA_VERSION, **data, **overrides}


def write_stage_file(profile: str, stage: Any, **overrides: Any) -> Path:
    path = results_dir(profile) / stage.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(embedded(stage, profile=profile, **overrides)), encoding="utf-8")
    return path


def finetune_row(**fields: Any) -> dict[str, Any]:
    """A stage-03 row with every required key (``fields`` override; ``<split>_<metric>`` keys added)."""
    base = {"domain": "physics", "strategy": "dense", "tilt": 0.0, "lambda": 1.0, "seed": 0, "ssae_folder": "saes/x",
            "checkpoint_step": 10, "steps": 10, "val_objective_by_step": {}, "train_s": None, "train_tokens_unique": None}
    return {**base, **fields}


def selection(doc_ids: list[str], strategy: str = "dense", domain: str = "physics") -> dict[str, Any]:
    return {"strategy": strategy, "domain": domain, "doc_ids": doc_ids, "token_counts": [1] * len(doc_ids),
            "total_tokens": len(doc_ids), "budget": len(doc_ids), "scores": None, "passes": 1, "budget_met": True,
            "overshoot": 0, "breakdown": {}, "meta": {}}
