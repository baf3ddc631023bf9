"""A linear probe (L2-regularized logistic regression) on mean-pooled residuals.

Fitted on standardized inputs (per-dimension mean and std of the training set) with full-batch
LBFGS in float64: the problem is convex, so the fit is deterministic and needs no seed; the
seeds of the study resample the training documents instead. The standardization is folded
into the weights, so a probe is one raw-space direction ``u`` and a bias:
``logit(x) = u . x + b``. That is what attribution through the SAE and SCR's "probe
alignment" (``u . d_i`` for decoder row ``d_i``) need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LinearProbe:
    direction: torch.Tensor   # float64 [d_model], raw-space weights
    bias: float

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.direction.shape[0]:
            raise ValueError(f"probe expects inputs [n, {self.direction.shape[0]}], got {tuple(x.shape)}")
        return x.double() @ self.direction + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (self.logits(x) > 0).long()

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(x) == torch.as_tensor(y).long()).double().mean())


def fit_probe(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2, max_iter: int = 200) -> LinearProbe:
    """Logistic regression of binary ``y`` [n] on ``x`` [n, d]: mean log-loss + l2/2 ||w||^2
    on standardized inputs."""
    y = torch.as_tensor(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"fit_probe needs x [n, d] and y [n], got {tuple(x.shape)} and {tuple(y.shape)}")
    labels = set(y.tolist())
    if labels != {0, 1}:
        raise ValueError(f"fit_probe needs both classes 0 and 1 in y, got {sorted(labels)}")
    x = x.double()
    mu = x.mean(0)
    sigma = x.std(0).clamp_min(1e-8)
    z = (x - mu) / sigma
    target = y.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, target) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        direction = w.detach() / sigma
        bias = float(b.detach() - (direction * mu).sum())
    return LinearProbe(direction, bias)
