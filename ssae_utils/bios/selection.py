"""Which attributed features carry gender: an automatic, documented criterion.

SHIFT's humans read the top-attributed features and ablate the ones about gender. Here a
candidate (one of the ``n_candidates`` features with the largest |attribution|) is a gender
feature when its pooled activation responds to gender with the content held fixed: on every
ambiguous training document and its pronoun-swapped copy,

    gender share = |mean f(female version) - mean f(male version)| / (mean f(female) + mean f(male))

in [0, 1]; 0 means the feature does not care which pronouns the text uses, 1 that it fires
only in one gender's version. A candidate with share >= ``threshold`` is selected (0.5: at
least 3x more active in one version). The criterion needs no profession labels and never sees
the test set; it is as good as the swap lexicon (``ssae_utils.data.bios.pronoun_swap``):
a feature for a gendered word the lexicon misses goes unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def gender_share(pooled_female: torch.Tensor, pooled_male: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-feature gender share [d_sae] from paired pooled features [n_pairs, d_sae] (rows aligned)."""
    if pooled_female.shape != pooled_male.shape or pooled_female.ndim != 2:
        raise ValueError(f"paired features must have one shape [n_pairs, d_sae], got {tuple(pooled_female.shape)} "
                         f"and {tuple(pooled_male.shape)}")
    if (pooled_female < 0).any() or (pooled_male < 0).any():
        raise ValueError("gender_share expects non-negative (ReLU) feature activations")
    mf, mm = pooled_female.double().mean(0), pooled_male.double().mean(0)
    total = mf + mm
    return torch.where(total > eps, (mf - mm).abs() / total.clamp_min(eps), torch.zeros_like(total))


@dataclass
class GenderSelection:
    candidates: list[int]      # top |attribution| features, best first
    selected: list[int]        # the candidates that pass the gender criterion, best first

    def to_dict(self) -> dict[str, list[int]]:
        return {"candidates": self.candidates, "selected": self.selected}


def select_gender_features(scores: torch.Tensor, share: torch.Tensor, n_candidates: int,
                           threshold: float) -> GenderSelection:
    """Candidates by |score| (features with score 0 never count), then the gender criterion."""
    if scores.shape != share.shape or scores.ndim != 1:
        raise ValueError(f"scores {tuple(scores.shape)} and shares {tuple(share.shape)} must be one 1-d shape")
    magnitude = scores.abs()
    k = min(n_candidates, int((magnitude > 0).sum()))
    order = torch.argsort(magnitude, descending=True, stable=True)[:k].tolist()
    return GenderSelection(order, [i for i in order if float(share[i]) >= threshold])
