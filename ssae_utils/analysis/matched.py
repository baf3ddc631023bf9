"""Models compared at matched sparsity (paper §3.3-3.5: every model at validation L0 ~ 100).

The tail-token analysis (notebook 05) and autointerp (notebook 06) compare the GSAE with
SSAEs at one sparsity. For each compared model (a strategy and a tilt), the lambda whose
validation L0 in ``03_finetune.json`` is closest to the target is taken; the L0 actually
reached is recorded next to the target, so a reader sees how well the match worked.
Both read stages 00 and 03 through their schemas (``ssae_utils.results``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ssae_utils.paths import cache_root
from ssae_utils.results import ABSENT, FINETUNE_FILE, FinetuneResults, SetupResults
from ssae_utils.sae.tilt_arms import arm_suffix, row_arm_suffix


@dataclass(frozen=True)
class ModelSpec:
    """One compared model: the GSAE (strategy None) or the SSAEs of one strategy and tilt."""

    label: str
    strategy: str | None = None  # None = the GSAE itself
    tilt: float = 0.0
    suffix: str = ""             # how a TERM arm tilts when not raw over tokens (sae.term.arm_suffix)


GSAE = ModelSpec("GSAE")
GENERAL = ModelSpec("General SSAE", "general")
DENSE = ModelSpec("Dense SSAE", "dense")
PAPER_TILTS = (500.0, 1e9)
STRATEGY_NAMES = {"general": "General", "seed_only": "Seed-only", "bm25": "BM25", "dense": "Dense",
                  "bm25_tracin": "BM25-TracIn", "dense_tracin": "Dense-TracIn"}
TERM_ALIAS = "TERM"  # in a list of labels: the first TERM model the sweep trained
TERM_ARMS_ALIAS = "TERM arms"  # ... and every other TERM model (arm) it trained
TERM_MARK = "+TERM t="  # every TERM model's label: "<Strategy>+TERM t=<tilt>"


def tilt_label(t: float) -> str:
    """500 -> "500", 1e9 -> "1e9", 0.5 -> "0.5"."""
    return f"{t:g}".replace("e+0", "e").replace("e+", "e")


def term_spec(t: float, strategy: str = "dense", suffix: str = "") -> ModelSpec:
    return ModelSpec(f"{STRATEGY_NAMES.get(strategy, strategy)}{TERM_MARK}{tilt_label(t)}{suffix}", strategy, float(t), suffix)


def _term_specs(sweep: dict[str, Any]) -> list[ModelSpec]:
    """One spec per TERM arm of a stage-03 sweep (finetune.term_tilts, then term_arms)."""
    strategy = sweep.get("term_strategy", "dense")
    base = arm_suffix(sweep.get("tilt_normalize", "raw"), sweep.get("tilt_over", "tokens"))
    specs = [term_spec(t, strategy, base) for t in sweep.get("term_tilts", PAPER_TILTS)]
    judged = sweep.get("judged_tilt")
    # the judged arm first: "TERM" and the scorecard's C7/C8 take the first TERM model
    specs.sort(key=lambda spec: judged is None or spec.tilt != float(judged))
    return specs + [term_spec(float(a["t"]), strategy, arm_suffix(a.get("normalize", "raw"), a.get("over", "tokens")))
                    for a in sweep.get("term_arms", ())]


def is_term_label(label: str) -> bool:
    return TERM_MARK in label


def compared_models(stage03: FinetuneResults | None = None, domain: str | None = None) -> tuple[ModelSpec, ...]:
    """GSAE, general-data SSAE, Dense SSAE and one TERM model per tilt that stage 03 trained
    on ``domain`` (None: its first domain; without stage 03's results: the paper's t = 500
    and 1e9 on Dense)."""
    sweep = stage03.sweep if stage03 is not None else {}
    domains = stage03.domains if stage03 is not None else ABSENT
    if domains is ABSENT:
        has_term = True
    else:
        spec = domains.get(domain if domain is not None else next(iter(domains), None), {})
        has_term = bool(spec.get("term"))
    return (GSAE, GENERAL, DENSE, *(_term_specs(sweep) if has_term else ()))


def other_term_arms(available: Sequence[ModelSpec]) -> list[ModelSpec]:
    """What ``TERM_ARMS_ALIAS`` names: every TERM model after the first (the judged arm)."""
    return [spec for spec in available if spec.tilt != 0][1:]


def resolve_specs(labels: Sequence[str], available: Sequence[ModelSpec]) -> list[ModelSpec]:
    """The specs named by ``labels`` ("TERM": the first TERM model; "TERM arms": the others),
    each once, or a clear error."""
    by_label = {spec.label: spec for spec in available}
    terms = [spec for spec in available if spec.tilt != 0]
    out: list[ModelSpec] = []
    for label in labels:
        if label == TERM_ALIAS:
            out += terms[:1]  # no TERM model on this domain: nothing to compare
        elif label == TERM_ARMS_ALIAS:
            out += [spec for spec in other_term_arms(available) if spec.label not in labels]
        elif label in by_label:
            out.append(by_label[label])
        else:
            raise ValueError(f"model {label!r} is not among those stage 03 trained: {list(by_label)}"
                             f"{' or ' + repr(TERM_ALIAS) + ', ' + repr(TERM_ARMS_ALIAS) if terms else ''}; "
                             "change the model list or the finetune sweep")
    unique: dict[str, ModelSpec] = {}
    for spec in out:
        unique.setdefault(spec.label, spec)
    return list(unique.values())


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
    stage00: SetupResults,
    stage03: FinetuneResults,
    domain: str,
    target_l0: float,
    specs: Sequence[ModelSpec] | None = None,
    seed: int | None = None,
) -> list[MatchedModel]:
    """One model per spec (default: ``compared_models`` of this sweep), the lambda with
    validation L0 closest to ``target_l0``.

    ``seed`` None takes the smallest seed in the sweep. Ties go to the larger lambda (the
    sparser model). Specs missing from the sweep raise an error naming the notebook to rerun.
    """
    if not math.isfinite(target_l0) or target_l0 <= 0:
        raise ValueError(f"target L0 must be a positive number, not {target_l0!r}")
    rows = stage03.domain_rows(domain)
    if not rows:
        raise ValueError(f"{FINETUNE_FILE} has no SSAEs for domain {domain!r}; run notebook 03 (python run_all.py --only 03)")
    if seed is None:
        seed = min(int(r.seed) for r in rows)
    picked = []
    for spec in (compared_models(stage03, domain) if specs is None else specs):
        if spec.strategy is None:
            l0 = float(stage03.gsae[domain]["val"].gsae["l0"])
            picked.append(MatchedModel(spec.label, None, 0.0, None, None, stage00.gsae.folder, l0, float(target_l0)))
            continue
        candidates = [r for r in rows if r.strategy == spec.strategy and float(r.tilt) == spec.tilt
                      and row_arm_suffix(r) == spec.suffix and int(r.seed) == seed]
        if not candidates:
            raise ValueError(
                f"{FINETUNE_FILE} has no {domain} SSAE for {spec.label} (strategy {spec.strategy!r}, tilt {spec.tilt:g}, "
                f"seed {seed}); add it to the finetune sweep and rerun notebook 03"
            )
        best = min(candidates, key=lambda r: (abs(r.val_l0 - target_l0), -float(r.lam)))
        picked.append(MatchedModel(spec.label, spec.strategy, spec.tilt, float(best.lam), seed, best.ssae_folder,
                                   best.val_l0, float(target_l0)))
    return picked


def load_matched_sae(model: MatchedModel, device: str = "cpu") -> Any:
    """The SAE of a picked model, from this machine's cache, on ``device``."""
    from ssae_utils.sae.gsae import load_sae

    folder = cache_root() / model.folder
    if not (folder / "cfg.json").exists():
        raise FileNotFoundError(
            f"{model.label}: SAE folder {folder} is not in this machine's cache; rerun notebook "
            f"{'00' if model.is_gsae else '03'} (python run_all.py --only {'00' if model.is_gsae else '03'} --force)"
        )
    return load_sae(folder, device=device)
