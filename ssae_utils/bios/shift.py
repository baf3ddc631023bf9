"""SHIFT: zero-ablate the selected SAE features, keep the SAE error term, re-evaluate the probe.

Zero-ablating feature set S of a token with the error term kept gives
``x' = x_hat(f with f_S = 0) + (x - x_hat(f)) = x - sum_{i in S} f_i d_i``: the residual
minus the selected features' decoder contributions. Computed that way, ablating nothing
returns the input bit for bit. Pooling is linear, so the pooled ablated residual is the pooled
residual minus the pooled features' contributions (``ablate_pooled``), which equals pooling
``ablate_tokens`` (tested).

"+ retrain" (Marks et al.): after ablation, refit only the probe (a fresh logistic
regression) on the ambiguous set with the ablated activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ssae_utils.bios.probe import LinearProbe, fit_probe


def _index(features: Sequence[int], d_sae: int) -> torch.Tensor:
    idx = torch.as_tensor(list(features), dtype=torch.long)
    if len(idx) and (idx.min() < 0 or idx.max() >= d_sae):
        raise IndexError(f"feature indices out of range for an SAE with {d_sae} features")
    return idx


@torch.no_grad()
def ablate_tokens(sae: Any, acts: torch.Tensor, features: Sequence[int]) -> torch.Tensor:
    """Token-level zero ablation of ``features`` with the SAE error term kept [n, d_model]."""
    idx = _index(features, int(sae.cfg.d_sae))
    if len(idx) == 0:
        return acts.clone()
    f = sae.encode(acts)
    return acts - f[:, idx] @ sae.W_dec[idx]


def ablate_pooled(pooled_x: torch.Tensor, pooled_f: torch.Tensor, W_dec: torch.Tensor,
                  features: Sequence[int]) -> torch.Tensor:
    """The same ablation on mean-pooled residuals and features [n_docs, d_model]."""
    if pooled_x.shape[0] != pooled_f.shape[0] or pooled_f.shape[1] != W_dec.shape[0] or pooled_x.shape[1] != W_dec.shape[1]:
        raise ValueError(f"pooled residuals {tuple(pooled_x.shape)}, pooled features {tuple(pooled_f.shape)} and "
                         f"decoder {tuple(W_dec.shape)} do not line up")
    idx = _index(features, W_dec.shape[0])
    if len(idx) == 0:
        return pooled_x.clone()
    return (pooled_x.double() - pooled_f[:, idx].double() @ W_dec[idx].double()).to(pooled_x.dtype)


@dataclass
class AblationOutcome:
    """Test-set predictions of the original probe on ablated activations, and of a retrained one."""

    features: list[int]
    pred: np.ndarray
    pred_retrained: np.ndarray | None = None


def ablate_and_evaluate(probe: LinearProbe, features: Sequence[int], W_dec: torch.Tensor,
                        train_x: torch.Tensor, train_f: torch.Tensor, train_y: np.ndarray,
                        test_x: torch.Tensor, test_f: torch.Tensor, l2: float, max_iter: int,
                        retrain: bool = True) -> AblationOutcome:
    """Ablate ``features`` on the test set (probe as trained) and, with ``retrain``, refit the
    probe on the ablated ambiguous set ("+ retrain")."""
    test_ablated = ablate_pooled(test_x, test_f, W_dec, features)
    pred = probe.predict(test_ablated).numpy()
    if not retrain:
        return AblationOutcome(list(map(int, features)), pred)
    train_ablated = ablate_pooled(train_x, train_f, W_dec, features)
    retrained = fit_probe(train_ablated, torch.as_tensor(train_y), l2, max_iter)
    return AblationOutcome(list(map(int, features)), pred, retrained.predict(test_ablated).numpy())


def random_features(active: torch.Tensor, n: int, seed: int) -> list[int]:
    """``n`` features drawn uniformly (seeded) from those marked ``active`` (the random baseline)."""
    pool = torch.nonzero(active).flatten().tolist()
    if n > len(pool):
        raise ValueError(f"asked for {n} random features but only {len(pool)} are active")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(pool, size=n, replace=False))
