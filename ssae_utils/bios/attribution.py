"""Which SAE features drive the probe: attribution of the probe's logit to each feature.

With the SAE error term kept, a document's pooled residual is
``x_bar = sum_i f_bar_i d_i + b_dec + err_bar`` (d_i: decoder row i, f_bar: pooled features),
and the probe reads ``logit = u . x_bar + b``. The attribution of feature i is activation x
gradient, ``f_bar_i * d logit / d f_bar_i = f_bar_i (u . d_i)``. Because the logit is linear
in the features, this is exact: it equals integrated gradients from the zero baseline and
the change of the logit when feature i is zero-ablated (``attribution_autograd`` checks it
against autograd through the token-level SAE in the tests).

SHIFT (Marks et al.) ranks features by their effect on the probe's metric on the ambiguous
data: the logit signed towards each document's label (positive: the feature helps the probe
give the label it was trained to give), averaged over documents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ssae_utils.bios.probe import LinearProbe


def probe_alignment(W_dec: torch.Tensor, probe: LinearProbe) -> torch.Tensor:
    """``u . d_i`` for every decoder row [d_sae]."""
    if W_dec.ndim != 2 or W_dec.shape[1] != probe.direction.shape[0]:
        raise ValueError(f"decoder {tuple(W_dec.shape)} does not match the probe's d_model {probe.direction.shape[0]}")
    return W_dec.double() @ probe.direction


def feature_attribution(pooled: torch.Tensor, W_dec: torch.Tensor, probe: LinearProbe) -> torch.Tensor:
    """Per-document attribution of the logit to each feature [n_docs, d_sae] (activation x gradient)."""
    if pooled.ndim != 2 or pooled.shape[1] != W_dec.shape[0]:
        raise ValueError(f"pooled features {tuple(pooled.shape)} do not match the decoder {tuple(W_dec.shape)}")
    return pooled.double() * probe_alignment(W_dec, probe)[None, :]


def shift_scores(pooled: torch.Tensor, W_dec: torch.Tensor, probe: LinearProbe, labels: np.ndarray) -> torch.Tensor:
    """Mean over documents of each feature's attribution to the logit of the document's label [d_sae]."""
    labels = torch.as_tensor(np.asarray(labels))
    if labels.shape != (pooled.shape[0],):
        raise ValueError(f"{labels.shape[0] if labels.ndim else 0} labels for {pooled.shape[0]} documents")
    sign = (2 * labels - 1).double()
    return (feature_attribution(pooled, W_dec, probe) * sign[:, None]).mean(0)


def attribution_autograd(sae: Any, acts: torch.Tensor, probe: LinearProbe) -> torch.Tensor:
    """Reference: activation x gradient of the logit of one document's mean-pooled residual
    [n_tokens, d_model], taken by autograd through the token-level SAE with the error term
    held fixed, summed over tokens -> [d_sae]. Slow; for tests."""
    acts = acts.double()
    W_dec, b_dec = sae.W_dec.detach().double(), sae.b_dec.detach().double()
    with torch.no_grad():
        f = sae.encode(acts.float()).double()
        error = acts - (f @ W_dec + b_dec)
    f = f.clone().requires_grad_(True)
    pooled = (f @ W_dec + b_dec + error).mean(0, keepdim=True)
    logit = probe.logits(pooled).sum()
    (grad,) = torch.autograd.grad(logit, f)
    return (grad * f).sum(0).detach()
