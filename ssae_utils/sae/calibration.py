"""A one-off lambda -> L0 calibration of a GSAE (stage 00, pretrained GSAEs).

The sweep of stage 03 must reach each subdomain's L0 window (``Domain.l0_window``). For a
GSAE trained here its own lambda (1 in the sweep's units) lands mid-window by construction;
for a pretrained one nothing says which lambdas do. So we finetune the GSAE briefly on
general tokens at a few lambdas (one stacked grid, ``sae.finetune.finetune``: the sweep's
training space, units and loss) and measure each result's L0 on held-out tokens. A short run
only shows where L0 is heading (a full finetune moves it further along the same direction),
which is what choosing a grid needs; the mapping is recorded in 00_setup.json
(``gsae.training.lambda_l0_calibration``) with the lambdas interpolated for each window.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ssae_utils.sae.evaluation import reconstruction_stats
from ssae_utils.sae.finetune import FinetuneConfig, finetune
from ssae_utils.validation import require as _require


def calibrate_lambda_l0(gsae: Any, train_acts: torch.Tensor, eval_acts: torch.Tensor, act_scale: float,
                        lambdas: Sequence[float], steps: int, batch_size: int, lr: float,
                        seed: int = 0) -> dict[str, Any]:
    """Held-out L0 and FVU after ``steps`` finetuning steps at each lambda.

    ``train_acts`` / ``eval_acts`` are raw activations [n_tokens, d_in] (outliers already
    left out); lambdas are in the sweep's units (activations times ``act_scale``). The lr
    stays constant (no decay: the run is a probe, not a finished SSAE). Deterministic for a
    given ``seed``.
    """
    _require(len(lambdas) >= 1, "the calibration needs at least one lambda (gsae.calibration_lambdas)")
    _require(train_acts.ndim == 2 and eval_acts.ndim == 2 and eval_acts.shape[0] > 0,
             "calibration activations must be non-empty tensors [n_tokens, d_in]")
    batch = min(batch_size, int(train_acts.shape[0]))
    fcfg = FinetuneConfig(l1_coefficients=tuple(lambdas), steps=steps, batch_size=batch, lr=lr, lr_decay_steps=0,
                          shuffle_buffer_batches=None, log_every=max(1, steps), seed=seed)
    result = finetune(gsae, train_acts, fcfg, act_scale, progress=False)
    base = reconstruction_stats(gsae, eval_acts)
    l0, fvu = [], []
    for sae in result.saes():
        stats = reconstruction_stats(sae, eval_acts)
        l0.append(float(stats.l0))
        fvu.append(float(stats.fvu))
    return {
        "lambdas": [float(x) for x in lambdas], "l0": l0, "fvu": fvu,
        "gsae_l0": float(base.l0), "gsae_fvu": float(base.fvu),
        "steps": steps, "batch_size": batch, "lr": lr, "seed": seed,
        "train_tokens": int(train_acts.shape[0]), "eval_tokens": int(eval_acts.shape[0]), "act_scale": act_scale,
        "units": "lambda in activations scaled by act_scale (mean norm sqrt(d_in)), as finetune.lambdas; "
                 "L0 in active features per held-out token",
    }


def lambda_for_l0(calibration: dict[str, Any], target_l0: float) -> float | None:
    """The lambda whose calibrated L0 is ``target_l0``, interpolated linearly in
    (log lambda, log L0) between the two calibrated lambdas around it; None outside the
    calibrated range or where L0 does not fall with lambda there (it should: a larger L1
    weight gives sparser codes)."""
    pairs = sorted((lam, l0) for lam, l0 in zip(calibration["lambdas"], calibration["l0"]) if lam > 0 and l0 > 0)
    if target_l0 <= 0:
        return None
    for (lam_a, l0_a), (lam_b, l0_b) in zip(pairs, pairs[1:]):
        if l0_b <= target_l0 <= l0_a and l0_b < l0_a:
            w = (math.log(l0_a) - math.log(target_l0)) / (math.log(l0_a) - math.log(l0_b))
            return math.exp(math.log(lam_a) + w * (math.log(lam_b) - math.log(lam_a)))
    return None


def window_lambdas(calibration: dict[str, Any], windows: dict[str, tuple[float, float]]) -> dict[str, list[float | None]]:
    """Per domain, [lambda giving the window's upper L0, lambda giving its lower L0] (None
    where the calibrated range does not reach that end: widen gsae.calibration_lambdas)."""
    return {name: [lambda_for_l0(calibration, hi), lambda_for_l0(calibration, lo)] for name, (lo, hi) in windows.items()}
