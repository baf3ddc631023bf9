"""SAE-TracIn: rerank a prefiltered candidate pool by gradient alignment with the seed set.

The paper (section 2.3) adapts TracIn (Pruthi et al., 2020) to SAEs:

    TracIn(z, z') = grad_w L(z) . grad_w L(z')

with w the pretrained GSAE's weights, z a candidate document, z' the seed set and L the SAE
loss. Here L of a set of tokens is the mean over its tokens of the per-token loss

    l(x) = ||x - x_hat||^2 + lambda * sum_i c_i f_i,   c_i = ||W_dec[i]|| ("decoder_norm",
                                                      SAELens standard) or 1 ("none", the
                                                      paper's form for unit-norm decoders)
    u = x - b_dec,   f = relu(u W_enc + b_enc),   x_hat = f W_dec + b_dec,   r = x_hat - x,

the canonical form of ``ssae_utils.sae.handle.SAEHandle``, whose weights are used here. An
SAE that reads x without subtracting b_dec (SAELens apply_b_dec_to_input=False) is folded
into this form by the handle (b_enc' = b_enc + b_dec W_enc): the same function in other
parameters. Gradients are still taken w.r.t. the SAE's own parameters: the seed gradient is
mapped back (``SAEHandle.to_source_grad``) and the closed form below, which works in the
handle's parameters, scores against the seed gradient mapped forward by the fold's Jacobian
(``SAEHandle.from_source_direction``); for an unfolded SAE both maps are the identity.

Cost. The seed gradient g = grad_w L(seed) needs one backward pass (in token batches). A
document's score is the mean over its tokens of <grad_w l(x_t), g>, the directional derivative
of l along g, so no per-document backward pass is needed: we use the closed form of that
inner product for the ReLU SAE, derived below, and average per document with ``doc_index``.

Derivation (per token; m = 1[pre > 0], the ReLU mask; autograd also gives relu'(0) = 0):
    a     = dl/df      = 2 r W_dec^T + lambda c                     [d_sae]
    delta = dl/dpre    = m * a                                      [d_sae]
    dl/dW_enc = u (outer) delta          dl/db_enc = delta
    dl/dW_dec = f (outer) 2r + lambda f_i W_dec[i]/||W_dec[i]||   (second term: decoder_norm)
    dl/db_dec = 2r - W_enc delta         (the -W_enc delta term: b_dec is subtracted from the
                                          input)
Taking the inner product with g = (G_Wenc, G_benc, G_Wdec, G_bdec) and grouping by factor:
    <grad l, g> = sum_{j active} a_j (v_j + e_j)          v = u G_Wenc,  e = G_benc - G_bdec W_enc
                + 2 r . (f G_Wdec + G_bdec)
                + lambda sum_{j active} f_j s_j          s_j = <W_dec[j]/||W_dec[j]||, G_Wdec[j]>
Only the encoder pre-activation u W_enc is a dense [tokens x d_sae] product; every other
term lives on the active features (L0 of them per token), so it is computed with sparse CSR
products: ``f @ [W_dec | G_Wdec]`` and the sampled products ``(r W_dec^T)`` and ``(u G_Wenc)``
restricted to the active pattern (``torch.sparse.sampled_addmm``). The result equals the
explicit per-document autograd score (tests/test_tracin.py checks this to 1e-5 in float64)
at about the cost of one SAE encoder pass per candidate token.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch

from ssae_utils.sae.handle import PARAM_NAMES, SAEHandle, as_handle
from ssae_utils.validation import require as _require

L1Weighting = Literal["none", "decoder_norm"]


@dataclass
class TracInConfig:
    """Settings of the TracIn score, the one object both functions below take (the pipeline
    builds it once from ``retrieval.tracin_*`` and the GSAE: ``pipeline.tracin.tracin_settings``)."""

    l1_coefficient: float
    # The GSAE here is trained with SAELens' decoder-norm-weighted L1, so that is the loss
    # whose gradient we take by default; "none" is the paper's lambda*||f||_1 (the two agree
    # when decoder rows have unit norm).
    l1_weighting: L1Weighting = "decoder_norm"
    params: tuple[str, ...] = PARAM_NAMES  # which GSAE parameters w the gradients are over
    batch_tokens: int = 4096  # tokens per batch: bounds the [batch, d_sae] intermediates

    def __post_init__(self) -> None:
        self.params = tuple(self.params)
        _require(
            isinstance(self.l1_coefficient, (int, float)) and math.isfinite(self.l1_coefficient) and self.l1_coefficient >= 0,
            f"tracin l1_coefficient must be a finite number >= 0, not {self.l1_coefficient!r}",
        )
        _require(
            self.l1_weighting in ("none", "decoder_norm"),
            f"tracin l1_weighting must be 'none' or 'decoder_norm', not {self.l1_weighting!r}",
        )
        _require(len(self.params) > 0, f"tracin params must name at least one of {PARAM_NAMES}")
        unknown = [p for p in self.params if p not in PARAM_NAMES]
        _require(not unknown, f"tracin params {unknown} unknown; choose from {PARAM_NAMES}")
        _require(len(set(self.params)) == len(self.params), f"tracin params has duplicates: {self.params}")
        _require(
            isinstance(self.batch_tokens, int) and self.batch_tokens >= 1,
            f"tracin batch_tokens must be a positive int, not {self.batch_tokens!r}",
        )


# --------------------------------------------------------------------------- helpers
def _relu_handle(sae) -> SAEHandle:
    """The SAE's handle; refuses SAEs whose forward pass is not the plain ReLU SAE the closed
    form assumes (the handle itself refuses normalised inputs and hook_z SAEs)."""
    handle = as_handle(sae)
    _require(handle.architecture == "standard",
             f"SAE-TracIn supports SAELens 'standard' (ReLU) SAEs, not {handle.architecture!r}")
    return handle


def _check_acts(acts: torch.Tensor, d_in: int, what: str) -> None:
    _require(isinstance(acts, torch.Tensor) and acts.ndim == 2, f"{what} must be a tensor [n_tokens, d_in], got {getattr(acts, 'shape', type(acts))}")
    _require(
        acts.shape[1] == d_in,
        f"{what} have d_in={acts.shape[1]} but the SAE expects d_in={d_in}: activations from a "
        "different model or hook layer than the GSAE was trained on?",
    )
    _require(acts.shape[0] > 0, f"{what} are empty: there are no tokens to score")


def _check_finite(batch: torch.Tensor, what: str) -> None:
    if not torch.isfinite(batch).all():
        raise FloatingPointError(f"{what} contain NaN/inf; recompute the activation cache")


def _token_loss(w: dict[str, torch.Tensor], x: torch.Tensor, lam: float, l1_weighting: str) -> torch.Tensor:
    """Per-token SAE loss [n]: ||x - x_hat||^2 + lambda * sum_i c_i f_i (module docstring).

    Written on the weights ``w`` (not ``SAEHandle.encode``) because autograd needs them as leaves."""
    u = x - w["b_dec"]
    f = torch.relu(u @ w["W_enc"] + w["b_enc"])
    r = f @ w["W_dec"] + w["b_dec"] - x
    penalty = f @ w["W_dec"].norm(dim=1) if l1_weighting == "decoder_norm" else f.sum(-1)
    return (r * r).sum(-1) + lam * penalty


# --------------------------------------------------------------------------- public API
def seed_gradient(sae, seed_acts: torch.Tensor, cfg: TracInConfig) -> dict[str, torch.Tensor]:
    """Gradient of the mean SAE loss over all seed tokens w.r.t. ``cfg.params`` (one backward
    pass, accumulated over token batches). Returns {param name: gradient shaped like the param}."""
    _require(isinstance(cfg, TracInConfig), f"seed_gradient takes a TracInConfig, not {type(cfg).__name__}")
    handle = _relu_handle(sae)
    weights = handle.weights()
    _check_acts(seed_acts, handle.d_in, "seed activations")
    # a folded SAE needs every handle gradient to map back to its own parameters
    wanted = PARAM_NAMES if handle.b_dec_folded else cfg.params
    w = {name: t.clone().requires_grad_(name in wanted) for name, t in weights.items()}
    n = seed_acts.shape[0]
    with torch.enable_grad():
        for start in range(0, n, cfg.batch_tokens):
            x = seed_acts[start : start + cfg.batch_tokens].to(w["W_enc"])
            _check_finite(x, "seed activations")
            # sum/n per batch: the accumulated gradient is that of the mean over all n tokens
            (_token_loss(w, x, cfg.l1_coefficient, cfg.l1_weighting).sum() / n).backward()
    grad = handle.to_source_grad({name: w[name].grad for name in wanted})
    return {name: grad[name] for name in cfg.params}


def tracin_scores(
    sae,
    seed_acts: torch.Tensor | None,
    cand_acts: torch.Tensor,
    cand_doc_index: torch.Tensor,
    n_docs: int,
    cfg: TracInConfig,
    seed_grad: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """TracIn score [n_docs] of each candidate document against the seed set (higher = more
    influential). ``cand_acts [n_tokens, d_in]`` holds every candidate token, ``cand_doc_index
    [n_tokens]`` its document (0..n_docs-1; every document needs at least one token). Pass
    ``seed_grad`` (from :func:`seed_gradient`, same settings) to reuse it across pools; then
    ``seed_acts`` may be None. Returns float64 scores on the SAE's device."""
    sums, counts = tracin_token_sums(sae, seed_acts, cand_acts, cand_doc_index, n_docs, cfg, seed_grad)
    return sums / counts


def tracin_token_sums(
    sae,
    seed_acts: torch.Tensor | None,
    cand_acts: torch.Tensor,
    cand_doc_index: torch.Tensor,
    n_docs: int,
    cfg: TracInConfig,
    seed_grad: dict[str, torch.Tensor] | None = None,
    allow_empty_docs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over each document's tokens of the per-token score, its token count), both float64
    [n_docs]: what a caller streaming the candidates chunk by chunk adds up (the score is
    sum / count). ``allow_empty_docs``: documents without tokens in this chunk get 0 / 0."""
    _require(isinstance(cfg, TracInConfig), f"tracin_scores takes a TracInConfig, not {type(cfg).__name__}")
    handle = _relu_handle(sae)
    weights = handle.weights()
    d_in = handle.d_in
    _check_acts(cand_acts, d_in, "candidate activations")
    doc_index = _check_doc_index(cand_doc_index, cand_acts.shape[0], n_docs, allow_empty_docs).to(weights["W_enc"].device)
    if seed_grad is None:
        _require(seed_acts is not None, "tracin_scores needs seed_acts or a precomputed seed_grad")
        seed_grad = seed_gradient(sae, seed_acts, cfg)
    _require(set(seed_grad) == set(cfg.params), f"seed_grad holds {sorted(seed_grad)}, params are {sorted(cfg.params)}")
    for name, grad in seed_grad.items():
        _require(grad.shape == weights[name].shape, f"seed_grad[{name!r}] has shape {tuple(grad.shape)}, the SAE's {tuple(weights[name].shape)}")

    W_enc, b_enc, W_dec, b_dec = (weights[name] for name in PARAM_NAMES)
    # Seed gradient with zeros for the parameters left out: their terms then vanish.
    g = {name: seed_grad[name].to(W_enc) if name in seed_grad else torch.zeros_like(weights[name]) for name in PARAM_NAMES}
    # the seed gradient is over the SAE's own parameters; the closed form is in the handle's
    g = handle.from_source_direction(g)
    lam = cfg.l1_coefficient
    dec_norm = W_dec.norm(dim=1)
    c = handle.l1_weights(cfg.l1_weighting)
    # e_j: b_enc gradient plus the b_dec-through-the-input term (both multiply delta_j)
    e = g["b_enc"] - g["b_dec"] @ W_enc
    # s_j: the decoder-norm penalty's gradient lambda f_j W_dec[j]/||W_dec[j]|| against G_Wdec
    if cfg.l1_weighting == "decoder_norm":
        s = (W_dec * g["W_dec"]).sum(1) / dec_norm.clamp_min(torch.finfo(dec_norm.dtype).tiny)
    else:
        s = torch.zeros_like(dec_norm)
    dec_and_grad = torch.cat([W_dec, g["W_dec"]], dim=1)  # one sparse product gives x_hat and f G_Wdec
    W_dec_T = W_dec.T.contiguous()
    use_W_enc = "W_enc" in cfg.params

    doc_sum = torch.zeros(n_docs, dtype=torch.float64, device=W_enc.device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for start in range(0, cand_acts.shape[0], cfg.batch_tokens):
            x = cand_acts[start : start + cfg.batch_tokens].to(W_enc)
            _check_finite(x, "candidate activations")
            u = x - b_dec
            f, rows, cols = _active_features(u @ W_enc + b_enc)
            prod = f @ dec_and_grad
            r = prod[:, :d_in] + b_dec - x
            a = 2 * torch.sparse.sampled_addmm(f, r, W_dec_T, beta=0.0).values() + lam * c[cols]
            v = torch.sparse.sampled_addmm(f, u, g["W_enc"], beta=0.0).values() if use_W_enc else 0.0
            per_active = a * (v + e[cols]) + lam * f.values() * s[cols]
            token = 2 * (r * (prod[:, d_in:] + g["b_dec"])).sum(-1)
            token = token.index_add(0, rows, per_active)
            doc_sum.index_add_(0, doc_index[start : start + cfg.batch_tokens], token.double())
    counts = torch.bincount(doc_index, minlength=n_docs).to(doc_sum)
    return doc_sum, counts


def _active_features(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """relu(pre) as a CSR matrix whose pattern is the ReLU mask (pre > 0), with its row and
    column indices. Built from nonzero() directly: about 2x faster than relu().to_sparse_csr()."""
    rows, cols = (pre > 0).nonzero(as_tuple=True)  # row-major order, as CSR needs
    crow = torch.zeros(pre.shape[0] + 1, dtype=torch.long, device=pre.device)
    crow[1:] = torch.bincount(rows, minlength=pre.shape[0]).cumsum(0)
    # valid by construction, so skip torch's invariant check (it would cost a pass)
    f = torch.sparse_csr_tensor(crow, cols, pre[rows, cols], pre.shape, check_invariants=False)
    return f, rows, cols


def _check_doc_index(doc_index: torch.Tensor, n_tokens: int, n_docs: int, allow_empty_docs: bool = False) -> torch.Tensor:
    _require(isinstance(n_docs, int) and n_docs >= 1, f"n_docs must be a positive int, not {n_docs!r}")
    _require(
        isinstance(doc_index, torch.Tensor) and doc_index.ndim == 1 and not doc_index.is_floating_point()
        and not doc_index.is_complex() and doc_index.dtype != torch.bool,
        "cand_doc_index must be a 1-D integer tensor [n_tokens]",
    )
    _require(doc_index.shape[0] == n_tokens, f"cand_doc_index has {doc_index.shape[0]} entries for {n_tokens} candidate tokens")
    lo, hi = int(doc_index.min()), int(doc_index.max())
    _require(lo >= 0 and hi < n_docs, f"cand_doc_index values span [{lo}, {hi}], outside 0..n_docs-1 = 0..{n_docs - 1}")
    counts = torch.bincount(doc_index.long(), minlength=n_docs)
    empty = [] if allow_empty_docs else (counts == 0).nonzero().flatten().tolist()
    _require(not empty, f"{len(empty)} of n_docs={n_docs} documents have no tokens (first: {empty[:5]}); n_docs mismatch?")
    return doc_index.long()
