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


def write_stage_file(profile: str, stage: Any, cfg: Any = None, **overrides: Any) -> Path:
    """The file as stage ``stage`` would write it for ``cfg`` (default: the profile's own
    config), lineage included, so stages reading it accept it."""
    from ssae_utils.config import load_profile
    from ssae_utils.lineage import lineage_of

    path = results_dir(profile) / stage.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = cfg or load_profile(profile)
    data = embedded(stage, profile=profile, **overrides)
    data["lineage"] = lineage_of(stage.NOTEBOOK, cfg.to_dict(), results_dir(profile))
    path.write_text(json.dumps(data), encoding="utf-8")
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
