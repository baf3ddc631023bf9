"""SAEBench's spurious-correlation-removal score (SCR), direction "remove gender".

Latents are ranked by ``|(mean f_bar | female) - (mean f_bar | male)| x |u_gender . d_i|``:
the mean pooled-activation difference between the genders on balanced training data times
the alignment of the latent's decoder row with a gender probe trained on that data (SAEBench
``get_effects_per_class_precomputed_acts`` with ``perform_scr``). The top N are zero-ablated
(error term kept) and the ambiguous ("biased") profession probe is evaluated on the balanced
test set:

    SCR(N) = (A_ablated - A_original) / (A_oracle - A_original)

0: no gain; 1: as good as a probe trained on balanced data. The score is undefined when the
oracle is no better than the original probe (returned as None).
"""

from __future__ import annotations

import numpy as np
import torch

from ssae_utils.bios.attribution import probe_alignment
from ssae_utils.bios.probe import LinearProbe


def scr_effects(pooled: torch.Tensor, gender: np.ndarray, W_dec: torch.Tensor, gender_probe: LinearProbe) -> torch.Tensor:
    """|mean activation difference (female - male) x probe alignment| per latent [d_sae]."""
    gender = np.asarray(gender)
    if gender.shape != (pooled.shape[0],) or not {0, 1} <= set(gender.tolist()):
        raise ValueError("scr_effects needs one gender label (0/1, both present) per document")
    female = torch.as_tensor(gender == 1)
    diff = pooled[female].double().mean(0) - pooled[~female].double().mean(0)
    return (diff * probe_alignment(W_dec, gender_probe)).abs()


def top_latents(effects: torch.Tensor, n: int) -> list[int]:
    """The ``n`` latents with the largest effect (fewer if fewer have a non-zero effect)."""
    k = min(n, int((effects > 0).sum()))
    return torch.argsort(effects, descending=True, stable=True)[:k].tolist()


def scr_score(acc_ablated: float, acc_original: float, acc_oracle: float, min_gap: float = 1e-9) -> float | None:
    gap = acc_oracle - acc_original
    if abs(gap) < min_gap:
        return None
    return (acc_ablated - acc_original) / gap
