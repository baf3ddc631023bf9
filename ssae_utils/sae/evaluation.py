"""SAE metrics: L0, fraction of variance unexplained, dead features, and patched CE.

"Patched" (spliced) cross-entropy is the LM's next-token loss when the residual stream at
the hooked layer is replaced by the SAE's reconstruction. We compute the clean run up to
the hook once per batch and recompute only the layers after it for each variant (clean,
SAE splice, zero ablation), so several SAEs share one prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any, Callable, Protocol

import numpy as np
import torch

from ssae_utils.device import device_of
from ssae_utils.progress import tqdm

from ssae_utils.sae.outliers import NormThreshold


class SplicableModel(Protocol):
    def resid_at_hook(self, tokens: torch.Tensor) -> torch.Tensor: ...
    def ce_from_resid(self, resid: torch.Tensor, tokens: torch.Tensor, per_token: bool = False,
                      valid: torch.Tensor | None = None) -> torch.Tensor: ...


class SAELike(Protocol):
    """What these metrics need of an SAE: an ``SAEHandle`` (ssae_utils.sae.handle), a SAELens
    SAE or anything else with encode/decode."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
    def decode(self, f: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ReconstructionStats:
    l0: float
    fvu: float  # fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean||^2
    explained_variance: float
    mse: float  # mean over tokens of ||x - x_hat||^2
    dead_features: int
    dead_fraction: float
    n_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def reconstruction_stats(sae: SAELike, acts: torch.Tensor, batch_size: int = 4096) -> ReconstructionStats:
    """L0 / FVU / dead features of ``sae`` on ``acts`` [n_tokens, d_in]."""
    if acts.ndim != 2:
        raise ValueError(f"expected activations [n_tokens, d_in], got {tuple(acts.shape)}")
    d_in = getattr(sae, "d_in", None) or getattr(getattr(sae, "cfg", None), "d_in", acts.shape[1])
    if acts.shape[1] != d_in:
        raise ValueError(f"activations have d_model={acts.shape[1]} but the SAE expects d_in={d_in}: wrong layer or model?")
    device = device_of(sae, default=acts.device)
    mean = acts.mean(0).to(device)
    sq_err = total_var = l0_sum = 0.0
    fired = None
    for start in range(0, acts.shape[0], batch_size):
        x = acts[start : start + batch_size].to(device)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += float(((x - x_hat) ** 2).sum())
        total_var += float(((x - mean) ** 2).sum())
        active = f > 0
        l0_sum += float(active.sum())
        batch_fired = active.any(0)
        fired = batch_fired if fired is None else fired | batch_fired
    n = acts.shape[0]
    fvu = sq_err / total_var if total_var > 0 else float("nan")
    dead = int((~fired).sum()) if fired is not None else 0
    return ReconstructionStats(
        l0=l0_sum / n,
        fvu=fvu,
        explained_variance=1.0 - fvu,
        mse=sq_err / n,
        dead_features=dead,
        dead_fraction=dead / int(fired.numel()) if fired is not None else 0.0,
        n_tokens=n,
    )


@torch.no_grad()
def feature_firing_rates(sae: SAELike, acts: torch.Tensor, batch_size: int = 4096) -> list[float]:
    """Share of the tokens in ``acts`` on which each feature fires (0 = dead on this data)."""
    counts = None
    device = device_of(sae, default=acts.device)
    for start in range(0, acts.shape[0], batch_size):
        fired = (sae.encode(acts[start : start + batch_size].to(device)) > 0).float().sum(0)
        counts = fired if counts is None else counts + fired
    if counts is None:
        raise ValueError("no activations to measure feature firing rates on")
    return (counts / acts.shape[0]).tolist()


def sae_splice(sae: SAELike, threshold: NormThreshold | None = None, keep_bos: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """Map a residual [b, s, d] to the SAE reconstruction.

    Position 0 (BOS) and outlier-norm tokens keep their original value: the SAE was not
    trained on them (see ``ssae_utils.sae.outliers``).
    """

    d_in = getattr(getattr(sae, "cfg", None), "d_in", None)

    def splice(resid: torch.Tensor) -> torch.Tensor:
        if d_in is not None and resid.shape[-1] != int(d_in):
            raise ValueError(f"the residual at the hook has d_model={resid.shape[-1]} but the SAE expects d_in={d_in}: "
                             f"an SAE trained on another model or layer (check model.name / model.hook_layer)")
        recon = sae.decode(sae.encode(resid))
        keep = torch.zeros(resid.shape[:-1], dtype=torch.bool, device=resid.device)
        if keep_bos:
            keep[:, 0] = True
        if threshold is not None:
            keep |= threshold.is_outlier(resid)
        return torch.where(keep.unsqueeze(-1), resid, recon)

    return splice


def zero_splice(keep_bos: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    def splice(resid: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(resid)
        if keep_bos:
            out[:, 0] = resid[:, 0]
        return out

    return splice


def _valid_targets(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    # per-token CE at position i predicts token i+1: valid when i + 1 < length
    positions = torch.arange(seq_len - 1).unsqueeze(0)
    return positions + 1 < lengths.unsqueeze(1)


@dataclass
class DocumentCE:
    """Patched CE kept per document (or any grouping of contexts the caller gives).

    ``mean[name]`` is exactly what ``spliced_ce`` returns (same accumulation, bit for bit);
    ``sums[name][g]`` is the sum over the valid target tokens of group ``g``'s contexts of the
    per-token CE (nats), accumulated in float64, and ``tokens[g]`` their number. So
    ``sums[name].sum() / tokens.sum()`` equals ``mean[name]`` up to the float32 rounding of
    the per-batch totals behind ``mean`` (exactly, for a float64 model). These are the
    evaluation-document observations ``ssae_utils.stats`` resamples.
    """

    mean: dict[str, float]
    sums: dict[str, np.ndarray]   # name -> float64 [n_groups]
    tokens: np.ndarray            # int64 [n_groups]: valid target tokens per group


@torch.no_grad()
def spliced_ce(
    model: SplicableModel,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    splices: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    batch_size: int = 8,
    desc: str = "patched CE",
    include_clean: bool = True,
) -> dict[str, float]:
    """Mean next-token CE (nats/token, padded positions excluded) per splice, plus 'clean'
    unless ``include_clean=False`` (it costs one more run of the layers after the hook and
    the unembedding, wasted when the caller already has it).

    The residual up to the hook is computed once per batch and shared by all splices.
    ``spliced_ce_by_document`` gives the same means plus per-document sums.
    """
    return _spliced_ce(model, tokens, lengths, splices, batch_size, desc, include_clean, None, 0).mean


@torch.no_grad()
def spliced_ce_by_document(
    model: SplicableModel,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    splices: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    doc_index: torch.Tensor,
    n_docs: int | None = None,
    batch_size: int = 8,
    desc: str = "patched CE",
    include_clean: bool = True,
) -> DocumentCE:
    """``spliced_ce`` plus, per document, the CE sum and token count (``DocumentCE``).

    ``doc_index[i]`` is the document (0 .. n_docs-1) context ``i`` comes from; ``n_docs``
    defaults to ``doc_index.max() + 1``. A document's contexts are summed together because
    the document, not the context, is the independent unit of evaluation noise."""
    if doc_index.shape != (tokens.shape[0],):
        raise ValueError(f"doc_index must be [n_contexts] = [{tokens.shape[0]}], got {tuple(doc_index.shape)}")
    if doc_index.numel() and int(doc_index.min()) < 0:
        raise ValueError("doc_index must be >= 0")
    n = int(doc_index.max()) + 1 if n_docs is None else int(n_docs)
    if doc_index.numel() and int(doc_index.max()) >= n:
        raise ValueError(f"doc_index holds {int(doc_index.max())}, beyond n_docs={n}")
    return _spliced_ce(model, tokens, lengths, splices, batch_size, desc, include_clean, doc_index.long(), n)


def _spliced_ce(model: SplicableModel, tokens: torch.Tensor, lengths: torch.Tensor,
                splices: dict[str, Callable[[torch.Tensor], torch.Tensor]], batch_size: int, desc: str,
                include_clean: bool, doc_index: torch.Tensor | None, n_docs: int) -> DocumentCE:
    if tokens.ndim != 2 or lengths.shape != (tokens.shape[0],):
        raise ValueError("tokens must be [n, seq] and lengths [n]")
    totals = {name: 0.0 for name in [*(["clean"] if include_clean else []), *splices]}
    doc_sums = {name: torch.zeros(n_docs, dtype=torch.float64) for name in totals}
    doc_tokens = torch.zeros(n_docs, dtype=torch.int64)
    count = 0
    # Longest contexts first, each batch cut to its longest context: padding sits at the end
    # of a context, so under causal attention it never changes the valid positions, and
    # neither the layers nor the unembedding need to run on it.
    order = torch.argsort(lengths, descending=True, stable=True)
    for start in tqdm(range(0, tokens.shape[0], batch_size), desc=desc, leave=False):
        picked = order[start : start + batch_size]
        batch_lengths = lengths[picked]
        batch = tokens[picked, : max(int(batch_lengths.max()), 2)]
        valid = _valid_targets(batch_lengths, batch.shape[1])
        resid = model.resid_at_hook(batch)
        count += int(valid.sum())
        docs = None if doc_index is None else doc_index[picked]
        if docs is not None:
            doc_tokens.index_add_(0, docs, valid.sum(1).to(torch.int64))
        for name in totals:
            patched = resid if name == "clean" else splices[name](resid)
            ce = model.ce_from_resid(patched, batch, per_token=True, valid=valid)
            if not torch.isfinite(ce[valid]).all():
                raise FloatingPointError(f"non-finite cross-entropy for splice {name!r}")
            # the mean keeps its float32 per-batch sum: the numbers stage 03 has always written
            totals[name] += float(ce[valid].sum())
            if docs is not None:
                mask = valid.to(ce.device)
                per_context = torch.where(mask, ce, torch.zeros_like(ce)).double().sum(1).cpu()
                doc_sums[name].index_add_(0, docs.cpu(), per_context)
    return DocumentCE({name: total / max(count, 1) for name, total in totals.items()},
                      {name: v.numpy() for name, v in doc_sums.items()}, doc_tokens.numpy())


def ce_loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean): 1 = as good as the clean model, 0 = as bad as zeros."""
    denom = ce_zero - ce_clean
    return float("nan") if denom == 0 else (ce_zero - ce_sae) / denom
