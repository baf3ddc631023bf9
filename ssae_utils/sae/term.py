"""Tilted empirical risk minimization (TERM; Li, Beirami, Sanjabi, Smith 2020) for SAEs.

The tilted loss of per-example losses L_1..L_N at tilt t is

    L~(t) = (1/t) log( (1/N) sum_i exp(t L_i) )

It is the mean at t -> 0 (exactly the mean here: t == 0 takes the ERM path), tends to the max
as t -> +inf and to the min as t -> -inf. We compute it as (logsumexp(t L) - log N) / t, so
it stays finite in float32 at t = 1e9 (the paper's largest tilt) and its gradient, a softmax
over t L weighting each example's gradient, is finite too.

The paper (section 2.4) leaves three choices open; ``TiltConfig`` makes each one a field:

- ``over``: what an "example" is. "tokens" (default): every token's SAE loss is one L_i,
  the unit SAELens trains on and the one that can single out rare tokens. "sequences": L_i
  is the mean loss of one context's tokens (needs the batch's sequence ids). As t -> 0 this
  tends to the mean of sequence means, which is ERM's token mean when sequences have equal
  length; at t == 0 exactly the ERM token mean is used.
- ``include_l1``: whether L_i is the whole SAE loss, reconstruction + lambda * L1 (default,
  the paper's "standard SAE loss for data point z_i"), or the reconstruction error alone
  (then the L1 term is added untilted, as a plain mean).
- ``normalize``: "raw" (default, the paper's formula) tilts L_i itself, so the effective
  tilt depends on the scale of the activations; "loss_scale" tilts L_i / s with
  s = mean(L).detach() and multiplies back by s, which makes t scale-free (t = 1 then means
  "tilt by one mean loss") and still reduces to the mean at t = 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ssae_utils.sae.tilt_arms import arm_suffix
from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

TILT_OVER = ("tokens", "sequences")
# |t| * max |L| below this: the tilted mean takes the cancellation-free small-tilt form
SMALL_TILT = 1e-2
TILT_NORMALIZE = ("raw", "loss_scale")


@dataclass(frozen=True)
class TiltConfig:
    t: float = 0.0                  # 0: ERM (the plain mean)
    over: str = "tokens"            # "tokens" | "sequences"
    include_l1: bool = True         # tilt reconstruction + lambda*L1 (True) or reconstruction only
    normalize: str = "raw"          # "raw" | "loss_scale"

    def __post_init__(self) -> None:
        _require(isinstance(self.t, (int, float)) and math.isfinite(self.t),
                 f"tilt t must be a finite number, not {self.t!r}")
        _require(self.over in TILT_OVER, f"tilt over must be one of {TILT_OVER}, not {self.over!r}")
        _require(self.normalize in TILT_NORMALIZE,
                 f"tilt normalize must be one of {TILT_NORMALIZE}, not {self.normalize!r}")

    @property
    def is_erm(self) -> bool:
        return self.t == 0

    def label(self) -> str:
        return "ERM" if self.is_erm else f"TERM t={self.t:g}{arm_suffix(self.normalize, self.over)}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TiltConfig":
        return from_dict_strict(cls, data)


def tilted_mean(losses: torch.Tensor, t: float, normalize: str = "raw") -> torch.Tensor:
    """(1/t) log mean exp(t * losses) over the last dimension (the mean when t == 0).

    ``losses`` is [..., N]; leading dimensions (e.g. a stack of SAEs) are kept.
    """
    _require(losses.ndim >= 1 and losses.shape[-1] > 0, "tilted_mean needs at least one loss")
    if t == 0:
        return losses.mean(-1)
    if normalize == "loss_scale":
        scale = losses.mean(-1, keepdim=True).detach().clamp_min(torch.finfo(losses.dtype).tiny)
        return scale.squeeze(-1) * tilted_mean(losses / scale, t, "raw")
    _require(normalize == "raw", f"normalize must be 'raw' or 'loss_scale', not {normalize!r}")
    n = losses.shape[-1]
    top = losses.detach().abs().amax()
    if abs(t) * float(top) < SMALL_TILT:
        # Near t = 0, logsumexp(t L) - log N cancels to rounding noise (float32 at t = 1e-7
        # gave 0 for losses ~5). Around the detached max m, exp is near-linear:
        # (1/t) log mean exp(t L) = m + (1/t) log1p(mean(expm1(t (L - m)))), exact in value
        # and gradient (softmax weights), without the cancellation.
        m = losses.detach().amax(-1, keepdim=True)
        return m.squeeze(-1) + torch.log1p(torch.expm1(t * (losses - m)).mean(-1)) / t
    return (torch.logsumexp(t * losses, dim=-1) - math.log(n)) / t


def per_sequence(losses: torch.Tensor, sequence_ids: torch.Tensor) -> torch.Tensor:
    """Mean loss per sequence: [..., N] token losses -> [..., S] (sequence ids 0..S-1)."""
    _require(sequence_ids.ndim == 1 and sequence_ids.shape[0] == losses.shape[-1],
             f"sequence_ids must be [N] = [{losses.shape[-1]}], got {tuple(sequence_ids.shape)}")
    ids = torch.unique(sequence_ids, return_inverse=True)[1]
    n_seq = int(ids.max()) + 1
    flat = losses.reshape(-1, losses.shape[-1])
    sums = torch.zeros(flat.shape[0], n_seq, dtype=losses.dtype, device=losses.device).index_add_(1, ids, flat)
    counts = torch.bincount(ids, minlength=n_seq).to(losses.dtype)
    return (sums / counts).reshape(*losses.shape[:-1], n_seq)


def sae_objective(mse: torch.Tensor, l1: torch.Tensor, tilt: TiltConfig, sequence_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The training objective from per-token reconstruction errors and (lambda-weighted) L1
    penalties, both [..., N]: the mean of their sum for ERM, its tilted version otherwise."""
    if tilt.is_erm:
        return (mse + l1).mean(-1)
    tilted = mse + l1 if tilt.include_l1 else mse
    if tilt.over == "sequences":
        _require(sequence_ids is not None, "tilt over sequences needs the batch's sequence ids")
        tilted = per_sequence(tilted, sequence_ids)
    out = tilted_mean(tilted, tilt.t, tilt.normalize)
    return out if tilt.include_l1 else out + l1.mean(-1)
