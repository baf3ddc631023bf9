"""The probe on a late layer: SAE ablations at the hook, propagated through the later blocks.

SHIFT (Marks et al.) reads the probe near the top of the model and ablates SAE features
upstream. Here every study text's contexts are kept as hook-layer residuals (BOS included,
so the later blocks see the whole context); a probe reads the residual after block
``probe_layer`` (``blocks.P.hook_resid_post``), mean-pooled over the tokens the SAE reads
(BOS and outlier-norm tokens left out, as at the hook).

Ablation of feature set S acts at the hook, token by token, on the tokens the SAE reads:
``x' = x_hat(f with f_S = 0) + (x - x_hat(f)) = x - f_S W_dec[S]`` (the SAE error term
kept), then blocks ``hook+1 .. P`` run on ``x'``. Ablating nothing is the identity (the
input is not even touched). With ``P == hook`` no block runs and this is today's pooled path.

Attribution through the later blocks (``shift_scores_through``): activation x gradient,
``f_i(t) * (d_i . dlogit/dx_hook(t))`` summed over a document's tokens, the gradient taken by
autograd from the probe's logit on the pooled probe-layer residual back to the hook
(attribution patching, the linear approximation Marks et al. use). At ``P == hook`` it equals
``attribution.shift_scores`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ssae_utils.bios.probe import LinearProbe

Ablation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (resid [b,s,d], read [b,s]) -> resid


@dataclass
class HookContexts:
    """Hook-layer residuals of documents' contexts, stored back to back (no padding: the paper
    profile's contexts are up to 1024 tokens long but most biographies are far shorter); a
    batch is padded on the right only when it runs (``batch``)."""

    acts: torch.Tensor      # float [n_tokens, d_model]: every position of every context, BOS included
    read: torch.Tensor      # bool [n_tokens]: tokens the SAE and the probes read
    ctx_len: torch.Tensor   # long [n_ctx]: length of each context (its tokens follow the previous one's)
    doc: torch.Tensor       # long [n_ctx]: the document of each context
    n_docs: int

    def __post_init__(self) -> None:
        self.ctx_start = torch.cumsum(self.ctx_len, 0) - self.ctx_len
        if int(self.ctx_len.sum()) != self.acts.shape[0] or self.read.shape != (self.acts.shape[0],):
            raise ValueError("HookContexts: context lengths, residuals and read mask do not line up")

    @property
    def n_ctx(self) -> int:
        return int(self.ctx_len.shape[0])

    def read_acts(self) -> torch.Tensor:
        """Residuals of the read tokens [n_read, d_model], in context then position order."""
        return self.acts[self.read]

    def read_doc_index(self) -> torch.Tensor:
        """Document of each read token, in ``read_acts`` order."""
        return torch.repeat_interleave(self.doc, self.ctx_len)[self.read]

    def select_docs(self, rows: torch.Tensor) -> "HookContexts":
        """The contexts of documents ``rows`` (distinct), renumbered 0..len(rows)-1 in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        new_index = torch.full((self.n_docs,), -1, dtype=torch.long)
        new_index[rows] = torch.arange(len(rows))
        mapped = new_index[self.doc]
        keep = mapped >= 0
        tokens = torch.repeat_interleave(keep, self.ctx_len)
        return HookContexts(self.acts[tokens], self.read[tokens], self.ctx_len[keep], mapped[keep], len(rows))

    def batch(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residuals [b, L, d] (right-padded with zeros, L = the longest read position + 1), read
        mask [b, L] and the document of each read token (``resid[read]`` order)."""
        lengths = self.ctx_len[contexts]
        length = int(lengths.max()) if len(contexts) else 0
        resid = torch.zeros(len(contexts), length, self.acts.shape[1])
        read = torch.zeros(len(contexts), length, dtype=torch.bool)
        for i, c in enumerate(contexts.tolist()):
            lo, n = int(self.ctx_start[c]), int(self.ctx_len[c])
            resid[i, :n] = self.acts[lo:lo + n]
            read[i, :n] = self.read[lo:lo + n]
        if read.any():      # causal attention: positions after the last read token never matter
            last = int(torch.nonzero(read.any(0)).max()) + 1
            resid, read = resid[:, :last], read[:, :last]
        doc = self.doc[contexts][:, None].expand_as(read)[read]
        return resid, read, doc

    @classmethod
    def from_padded(cls, resid: torch.Tensor, read: torch.Tensor, doc: torch.Tensor, n_docs: int) -> "HookContexts":
        """From right-padded contexts [n_ctx, s, d] (every context taken at full length s)."""
        n_ctx, s, d = resid.shape
        return cls(resid.reshape(-1, d).float(), read.reshape(-1), torch.full((n_ctx,), s, dtype=torch.long),
                   doc.long(), n_docs)

    @classmethod
    def from_activation_set(cls, act_set: Any, n_docs: int, keep: torch.Tensor | None = None) -> "HookContexts":
        """From an ``ActivationSet`` loaded with BOS (``exclude_bos=False``); a context starts at
        each position 0. ``keep`` masks tokens the SAE reads (e.g. inliers); BOS is never read."""
        positions = act_set.positions.long()
        starts = torch.nonzero(positions == 0).flatten()
        ctx_len = torch.diff(torch.cat([starts, torch.tensor([len(positions)])]))
        keep = torch.ones(len(positions), dtype=torch.bool) if keep is None else keep
        return cls(act_set.acts.float(), keep & (positions > 0), ctx_len, act_set.doc_index[starts].long(), n_docs)


def _by_length(ctx: HookContexts) -> torch.Tensor:
    return torch.argsort(ctx.ctx_len, stable=True)


def run_blocks(model: Any, resid: torch.Tensor, probe_layer: int) -> torch.Tensor:
    """Blocks ``hook_layer+1 .. probe_layer`` on hook residuals [b, s, d] -> ``blocks.P.hook_resid_post``."""
    hook = model.hook_layer
    if probe_layer == hook:
        return resid
    if not hook < probe_layer < model.n_layers:
        raise ValueError(f"probe_layer={probe_layer} must be the hook layer {hook} or a later block (< {model.n_layers})")
    out = model.tl(resid.to(model.device, model.dtype), start_at_layer=hook + 1, stop_at_layer=probe_layer + 1)
    return out.float()


def sae_ablation(sae: Any, features: Sequence[int]) -> Ablation | None:
    """Zero-ablate ``features`` of ``sae`` on the read tokens, error term kept (None: nothing to ablate)."""
    idx = torch.as_tensor(list(features), dtype=torch.long)
    if len(idx) == 0:
        return None
    W = sae.W_dec.detach().float()[idx]

    def ablate(resid: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        out = resid.clone()
        x = resid[read]
        with torch.no_grad():
            f = sae.encode(x)[:, idx].float()
        out[read] = x - f @ W
        return out

    return ablate


@torch.no_grad()
def pooled_at_layers(model: Any, ctx: HookContexts, layers: Sequence[int], ablation: Ablation | None = None,
                     batch: int = 32) -> dict[int, torch.Tensor]:
    """Per-document mean of the residual after each block in ``layers`` (ablation applied at the hook)."""
    layers = sorted(set(int(x) for x in layers))
    sums = {p: torch.zeros(ctx.n_docs, ctx.acts.shape[1], dtype=torch.float64) for p in layers}
    counts = torch.bincount(ctx.read_doc_index(), minlength=ctx.n_docs).clamp_min(1).double()
    order = _by_length(ctx)   # contexts of similar length share a batch: little padding to run
    for start in range(0, len(order), batch):
        resid, read, doc = ctx.batch(order[start:start + batch])
        x = resid if ablation is None else ablation(resid, read)
        layer_now = model.hook_layer
        for p in layers:
            if p != layer_now:
                x = model.tl(x.to(model.device, model.dtype), start_at_layer=layer_now + 1, stop_at_layer=p + 1).float()
                layer_now = p
            sums[p].index_add_(0, doc, x[read].double().cpu())
    return {p: (s / counts[:, None]).float() for p, s in sums.items()}


def pooled_probe_resid(model: Any, ctx: HookContexts, probe_layer: int, ablation: Ablation | None = None,
                       batch: int = 32) -> torch.Tensor:
    return pooled_at_layers(model, ctx, [probe_layer], ablation, batch)[probe_layer]


def hook_gradients(model: Any, ctx: HookContexts, probe_layer: int, probe: LinearProbe, weights: np.ndarray,
                   batch: int = 32) -> torch.Tensor:
    """d/dx_hook(t) of ``sum_docs weights[doc] * logit(doc)`` for every read token [n_read, d_model]
    (``resid[read]`` order); the logit reads the pooled probe-layer residual."""
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)
    counts = torch.bincount(ctx.read_doc_index(), minlength=ctx.n_docs).clamp_min(1).double()
    u = probe.direction.double()
    grads = []
    for start in range(0, ctx.n_ctx, batch):   # context order, so the rows follow read_acts()
        resid, read, doc = ctx.batch(torch.arange(start, min(start + batch, ctx.n_ctx)))
        resid.requires_grad_(True)
        y = run_blocks(model, resid, probe_layer) if probe_layer != model.hook_layer else resid
        # each token's share of its document's pooled logit (the logit is linear in the pooled residual)
        per_token = (y[read].double() @ u) * (w[doc] / counts[doc])
        (g,) = torch.autograd.grad(per_token.sum(), resid)
        grads.append(g[read].detach().float())
    return torch.cat(grads) if grads else torch.zeros(0, ctx.acts.shape[1])


@torch.no_grad()
def shift_scores_through(sae: Any, ctx: HookContexts, grads: torch.Tensor, batch_tokens: int = 2048) -> torch.Tensor:
    """Mean over documents of each feature's attribution ``sum_t f_i(t) (d_i . g(t))`` [d_sae];
    ``grads`` from ``hook_gradients`` with the label signs as weights."""
    x = ctx.read_acts()
    W = sae.W_dec.detach().float()
    total = torch.zeros(W.shape[0], dtype=torch.float64)
    for start in range(0, x.shape[0], batch_tokens):
        f = sae.encode(x[start:start + batch_tokens]).float()
        total += (f * (grads[start:start + batch_tokens] @ W.T)).double().sum(0)
    return total / ctx.n_docs
