"""Models compared at matched sparsity (paper §3.3-3.5: every model at validation L0 ~ 100).

The tail-token analysis (notebook 05) and autointerp (notebook 06) compare the GSAE with
SSAEs at one sparsity. For each compared model (a strategy and a tilt), the lambda whose
validation L0 in ``03_finetune.json`` is closest to the target is taken; the L0 actually
reached is recorded next to the target, so a reader sees how well the match worked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ssae_utils.paths import cache_root


@dataclass(frozen=True)
class ModelSpec:
    """One compared model: the GSAE (strategy None) or the SSAEs of one strategy and tilt."""

    label: str
    strategy: str | None = None  # None = the GSAE itself
    tilt: float = 0.0


GSAE = ModelSpec("GSAE")
GENERAL = ModelSpec("General SSAE", "general")
DENSE = ModelSpec("Dense SSAE", "dense")
TERM_500 = ModelSpec("Dense+TERM t=500", "dense", 500.0)
TERM_MAX = ModelSpec("Dense+TERM t=1e9", "dense", 1e9)
DEFAULT_COMPARED: tuple[ModelSpec, ...] = (GSAE, GENERAL, DENSE, TERM_500, TERM_MAX)


@dataclass(frozen=True)
class MatchedModel:
    """The model picked for one spec: where it is and the sparsity it reached."""

    label: str
    strategy: str | None
    tilt: float
    l1_coefficient: float | None  # None for the GSAE
    seed: int | None
    folder: str  # relative to the cache root (``ssae_utils.paths.cache_root``)
    val_l0: float
    target_l0: float

    @property
    def is_gsae(self) -> bool:
        return self.strategy is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_matched_models(
    stage00: dict[str, Any],
    stage03: dict[str, Any],
    domain: str,
    target_l0: float,
    specs: Sequence[ModelSpec] = DEFAULT_COMPARED,
    seed: int | None = None,
) -> list[MatchedModel]:
    """One model per spec, the lambda with validation L0 closest to ``target_l0``.

    ``seed`` None takes the smallest seed in the sweep. Ties go to the larger lambda (the
    sparser model). Specs missing from the sweep raise an error naming the notebook to rerun.
    """
    if not math.isfinite(target_l0) or target_l0 <= 0:
        raise ValueError(f"target L0 must be a positive number, not {target_l0!r}")
    rows = [r for r in stage03.get("rows", []) if r["domain"] == domain]
    if not rows:
        raise ValueError(f"03_finetune.json has no SSAEs for domain {domain!r}; run notebook 03 (python run_all.py --only 03)")
    if seed is None:
        seed = min(int(r["seed"]) for r in rows)
    picked = []
    for spec in specs:
        if spec.strategy is None:
            l0 = float(stage03["gsae"][domain]["val"]["gsae"]["l0"])
            picked.append(MatchedModel(spec.label, None, 0.0, None, None, stage00["gsae"]["folder"], l0, float(target_l0)))
            continue
        candidates = [r for r in rows if r["strategy"] == spec.strategy and float(r["tilt"]) == spec.tilt and int(r["seed"]) == seed]
        if not candidates:
            raise ValueError(
                f"03_finetune.json has no {domain} SSAE for {spec.label} (strategy {spec.strategy!r}, tilt {spec.tilt:g}, "
                f"seed {seed}); add it to the finetune sweep and rerun notebook 03"
            )
        best = min(candidates, key=lambda r: (abs(float(r["val_l0"]) - target_l0), -float(r["lambda"])))
        picked.append(MatchedModel(spec.label, spec.strategy, spec.tilt, float(best["lambda"]), seed, best["ssae_folder"],
                                   float(best["val_l0"]), float(target_l0)))
    return picked


def load_matched_sae(model: MatchedModel) -> Any:
    """The SAELens SAE of a picked model, from this machine's cache."""
    from ssae_utils.sae.gsae import load_sae

    folder = cache_root() / model.folder
    if not (folder / "cfg.json").exists():
        raise FileNotFoundError(
            f"{model.label}: SAE folder {folder} is not in this machine's cache; rerun notebook "
            f"{'00' if model.is_gsae else '03'} (python run_all.py --only {'00' if model.is_gsae else '03'} --force)"
        )
    return load_sae(folder)
