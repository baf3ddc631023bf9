"""The finetuning recipe's gate (stage 03, before the sweep): a finetune must not damage its start.

A general-data SSAE finetuned at the GSAE's own lambda on the same kind of text the GSAE was
trained on should land where it started. If it ends up with a clearly worse patched
perplexity than the GSAE on general held-out text, the recipe (learning rate, schedule) is
damaging the GSAE, and every strategy's gap to the general-data baseline is inflated by that
damage (claims C1, C3, C5).

The rule, stated before any sweep and blind to every claim: try ``finetune.gate_lrs`` from
the largest down; for each, train the ``general`` strategy's SSAE of the first domain that
has one (seed 0, lambda ``finetune.gate_lambda``, the sweep's steps, batch and schedule) and
evaluate it and the GSAE on the same ``finetune.gate_contexts`` contexts of
``general_heldout`` (never in the pool). The candidate passes when the upper end of the 95%
interval of ``PPL_SSAE / PPL_GSAE`` (paired over documents, ``ssae_utils.stats``; one SSAE,
so document noise only) is at most ``1 + finetune.gate_tolerance``. The first passing lr is
the lr of the whole sweep (ERM and every TERM arm). If none passes the smallest is used and
the gate is recorded as failed (notebook 03 says so in red; nothing is hidden).

Everything tried is written to 03_finetune.json (``recipe_gate``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssae_utils.config import ProfileConfig
from ssae_utils.stats.hierarchical import ce_arm, contrast, relative_ppl

log = logging.getLogger(__name__)

GATE_SPLIT = "general_heldout"
GATE_STRATEGY = "general"


@dataclass
class GateTrial:
    lr: float
    ratio: float                 # PPL_SSAE / PPL_GSAE on the gate documents
    interval: tuple[float, float]
    l0: float
    gsae_l0: float
    passed: bool
    ssae_folder: str

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "ppl_ratio": self.ratio, "interval": list(self.interval), "l0": self.l0,
                "gsae_l0": self.gsae_l0, "passed": self.passed, "ssae_folder": self.ssae_folder}


def gate_domain(cfg: ProfileConfig) -> str | None:
    """The domain whose general-data selection the gate trains on (the first with one)."""
    return next((name for name, d in cfg.domains.items() if GATE_STRATEGY in d.strategies), None)


def ratio_interval(ssae_sums: list[float], gsae_sums: list[float], tokens: list[int]) -> tuple[float, tuple[float, float]]:
    """``PPL_SSAE / PPL_GSAE`` on the same documents and its 95% t interval over documents."""
    arm = relative_ppl(ce_arm(np.asarray([ssae_sums]), np.asarray(tokens), GATE_SPLIT),
                       ce_arm(np.asarray([gsae_sums]), np.asarray(tokens), GATE_SPLIT))
    est = contrast({"ssae": arm}, {"ssae": 1.0})
    if est.unknown_doc_variance:   # one document: no noise estimate, so no interval (never a pass)
        return est.effect, (float("nan"), float("nan"))
    lo, hi = est.interval(0.95)
    return est.effect, (lo, hi)


def passes(interval: tuple[float, float], tolerance: float) -> bool:
    return bool(interval[1] <= 1.0 + tolerance)   # NaN (no interval) never passes


def with_lr(cfg: ProfileConfig, lr: float) -> ProfileConfig:
    """``cfg`` with the gated lr for every grid (ERM and TERM). Only the grids are built from
    it: results are still stamped with the profile's own config (lineage)."""
    return dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, lr=lr, term_lr=None))


def sweep_config(cfg: ProfileConfig, **context: Any) -> tuple[dict[str, Any] | None, ProfileConfig]:
    """The gate's record (``run_gate``, same keyword arguments) and the config the sweep's grids
    train with: ``cfg`` with the gated lr, or ``cfg`` itself when there is no gate."""
    gate = run_gate(cfg, **context)
    return gate, (cfg if gate is None else with_lr(cfg, gate["lr"]))


def run_gate(cfg: ProfileConfig, *, gsae: Any, gsae_folder: str, store: Any, corpora: Any, selections: Any,
             model: Any, threshold: Any, act_scale: float, batch: int) -> dict[str, Any] | None:
    """Try the candidate lrs (largest first) and return the gate's record (None: no gate)."""
    from ssae_utils.pipeline import finetune as ft   # stage 03's helpers (this module is part of it)

    s = cfg.finetune
    name = gate_domain(cfg)
    if not s.gate_lrs or name is None:
        return None
    domain = cfg.domain(name)
    held = corpora[GATE_SPLIT]
    if len(held) < 2:
        raise ValueError(f"the recipe gate needs general held-out documents ({GATE_SPLIT} has {len(held)}); "
                         "raise data.general_heldout_share or set finetune.gate_lrs=[]")
    ce_docs = ft.eval_documents(held, store, s.gate_contexts, cfg.seed + 13)
    stats_docs = ft.eval_documents(held, store, s.stats_contexts, cfg.seed + 17)
    data = ft.eval_set(store, ce_docs, stats_docs, threshold, "caching the recipe gate's general held-out activations")
    gsae_sums: dict[str, list[float]] = {}
    g = ft.evaluate(model, {"gsae": gsae}, data, threshold, batch, "recipe gate: GSAE", doc_ce=gsae_sums)["gsae"]
    tokens = ft.doc_tokens(data)
    docs = ft.selection_docs(corpora, domain, selections[name][GATE_STRATEGY])
    trials: list[GateTrial] = []
    for lr in sorted(s.gate_lrs, reverse=True):
        gated = with_lr(cfg, lr)
        fcfg = dataclasses.replace(ft.finetune_config(gated, domain, seed=0, tilt=0.0),
                                   l1_coefficients=(s.gate_lambda,), checkpoint_steps=())
        train_docs, _ = ft.training_documents(docs, selections[name][GATE_STRATEGY], fcfg, s.sample_read_tokens, cfg.seed)
        grid = ft.train_grid(gsae, gsae_folder, store, train_docs, fcfg, act_scale, threshold, model.hook_name, model.name,
                             f"recipe gate lr={lr:g}")
        sums: dict[str, list[float]] = {}
        m = ft.evaluate(model, {"ssae": grid.saes[fcfg.steps][0]}, data, threshold, batch, f"recipe gate lr={lr:g}",
                        doc_ce=sums)["ssae"]
        ratio, interval = ratio_interval(sums["ssae"], gsae_sums["gsae"], tokens)
        trial = GateTrial(lr, ratio, interval, m["l0"], g["l0"], passes(interval, s.gate_tolerance),
                          grid.folders[fcfg.steps][0])
        trials.append(trial)
        log.info("recipe gate: lr %g -> PPL ratio %.4f [%.4f, %.4f] (%s)", lr, ratio, *interval,
                 "passes" if trial.passed else "fails")
        if trial.passed:
            break
    chosen = next((t for t in trials if t.passed), trials[-1])
    return {"rule": (f"largest lr of {sorted(s.gate_lrs, reverse=True)} whose general-data SSAE at lambda {s.gate_lambda:g} "
                     f"({name}'s general selection, seed 0, {domain.steps} steps) has the upper 95% bound of PPL/PPL_GSAE "
                     f"on {GATE_SPLIT} <= {1 + s.gate_tolerance:g}"),
            "domain": name, "lambda": s.gate_lambda, "tolerance": s.gate_tolerance,
            "documents": len(ce_docs), "ce_tokens": int(sum(tokens)), "gsae_ppl": g["ppl"],
            "trials": [t.to_dict() for t in trials], "lr": chosen.lr, "passed": chosen.passed}
