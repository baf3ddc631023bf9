"""Logit lens of SAE features: each decoder direction through the unembedding, top-k tokens.

Which tokens does a feature promote? Its decoder row ``d`` (a direction in the residual
stream at the hooked layer) is mapped to vocabulary logits as if it were read out directly,
and the ``k`` largest are its top tokens (Bloom & Lin, "Understanding SAE features with the
logit lens", the paper's ref. [17]).

The final norm. Gemma reads logits out as ``W_U^T (g * x / rms(x))``: an RMSNorm without
centring, with a learned per-dimension scale ``g`` (TransformerLens's ``ln_final.w``, already
``1 + weight`` for Gemma), and no unembedding bias. For a *direction* the ``1 / rms(x)``
factor is one positive number, which changes no ranking, so it is dropped; the scale ``g``
is not: it reweights the dimensions (0.19 to 301 in Gemma 3 270M), so leaving it out would
rank tokens by a readout the model never performs. We therefore rank by
``W_U^T (g * d)``. This is also what the reference does implicitly: TransformerLens folds
``g`` into ``W_U`` when the norms are folded (``fold_ln``), and Bloom & Lin use that folded
``W_U``; our model is loaded without weight processing, so the scale is applied here. A
logit soft-cap (none in Gemma 3) is monotone and would not change a top-k, so it is skipped.

Other final norms. A LayerNorm (GPT-2-style models, e.g. ``tiny-random-gpt2``) reads out
``W_U^T (g * (x - mean(x)) / std(x) + b) + b_U``: its weight ``g`` is the scale as above, it
also centres, so a direction's readout is ``W_U^T (g * (d - mean(d)))``, and its bias ``b``
(like ``b_U``) is the same for every input, so it is no part of a direction's readout and is
dropped. The model says which applies (``HookedLM.final_norm_scale``/``final_norm_centres``).

Memory. ``[d_sae, vocab]`` logits (4096 x 262k floats = 4.3 GB) are never formed: features
and vocabulary are walked in blocks of ``feature_chunk x vocab_chunk``, and a running top-k
per feature is merged with each block's top-k (``torch.topk`` of the concatenation).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from ssae_utils.progress import tqdm

from ssae_utils.io import atomic_path, stable_hash
from ssae_utils.paths import cache_dir


@dataclass
class TopTokens:
    """The ``k`` tokens with the largest logit-lens value per feature, best first."""

    values: torch.Tensor   # float32 [d_sae, k]
    indices: torch.Tensor  # long [d_sae, k] token ids

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def lens_directions(W_dec: torch.Tensor, norm_scale: torch.Tensor | None) -> torch.Tensor:
    """Decoder rows as the unembedding sees them: ``g * d`` per row (see the module docstring).

    ``norm_scale`` None: a model whose final norm has no learned scale (or to study the raw
    directions). Scaling the rows instead of ``W_U`` avoids a second copy of ``W_U``."""
    if W_dec.ndim != 2:
        raise ValueError(f"W_dec must be [d_sae, d_model], got shape {tuple(W_dec.shape)}")
    if norm_scale is None:
        return W_dec
    if norm_scale.shape != (W_dec.shape[1],):
        raise ValueError(f"final-norm scale has shape {tuple(norm_scale.shape)}; W_dec rows have {W_dec.shape[1]} dimensions")
    return W_dec * norm_scale.to(W_dec.dtype)


@torch.no_grad()
def top_tokens(directions: torch.Tensor, W_U: torch.Tensor, k: int, feature_chunk: int = 1024,
               vocab_chunk: int = 32768, progress: bool = True, desc: str = "logit lens") -> TopTokens:
    """Top-``k`` tokens of ``directions @ W_U`` per row, computed in blocks.

    directions [n, d_model] (already passed through ``lens_directions``), W_U [d_model, vocab].
    Never holds more than ``feature_chunk x vocab_chunk`` logits at once. The order of exact
    ties (equal logits) is not defined."""
    if directions.ndim != 2 or W_U.ndim != 2:
        raise ValueError(f"directions must be [n, d_model] and W_U [d_model, vocab]; got {tuple(directions.shape)} and {tuple(W_U.shape)}")
    if directions.shape[1] != W_U.shape[0]:
        raise ValueError(f"SAE directions have d_in={directions.shape[1]} but the unembedding has d_model={W_U.shape[0]}: "
                         "the SAE was trained on another model or layer")
    n, vocab = directions.shape[0], W_U.shape[1]
    if not 1 <= k <= vocab:
        raise ValueError(f"k must be in 1..{vocab}, not {k}")
    values = torch.empty(n, k, dtype=torch.float32)
    indices = torch.empty(n, k, dtype=torch.long)
    blocks = [(f, v) for f in range(0, n, feature_chunk) for v in range(0, vocab, vocab_chunk)]
    best_v = best_i = None
    for f0, v0 in tqdm(blocks, desc=desc, disable=not progress, leave=False):
        if v0 == 0:
            best_v, best_i = None, None
        rows = directions[f0 : f0 + feature_chunk].to(W_U.device, W_U.dtype)
        logits = (rows @ W_U[:, v0 : v0 + vocab_chunk]).float()
        kk = min(k, logits.shape[1])
        block_v, block_i = logits.topk(kk, dim=1)
        block_i = block_i + v0
        if best_v is not None:
            block_v, pick = torch.cat([best_v, block_v], 1).topk(k, dim=1)
            block_i = torch.cat([best_i, block_i], 1).gather(1, pick)
        best_v, best_i = block_v, block_i
        del logits
        if v0 + vocab_chunk >= vocab:  # last vocabulary block of these features
            values[f0 : f0 + feature_chunk] = best_v.cpu()
            indices[f0 : f0 + feature_chunk] = best_i.cpu()
    return TopTokens(values, indices)


def cached_top_tokens(W_dec: torch.Tensor, model: Any, k: int, feature_chunk: int, vocab_chunk: int,
                      desc: str = "logit lens") -> tuple[TopTokens, bool]:
    """``top_tokens`` of an SAE decoder through ``model`` (a HookedLM), cached on disk.

    Keyed by the decoder's exact bytes and the model fingerprint, so SAEs with identical
    decoders (e.g. two TERM tilts in the max-loss limit) are computed once. Returns
    (top tokens, whether it came from the cache)."""
    if W_dec.shape[1] != model.d_model:
        raise ValueError(f"{desc}: SAE d_in={W_dec.shape[1]} but the model's d_model={model.d_model}; "
                         "the SAE does not belong to this model (rerun notebooks 00 and 03)")
    W_dec = W_dec.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(W_dec.numpy().tobytes()).hexdigest()[:20]
    centre = final_norm_centres(model)
    key = stable_hash({"W_dec": digest, "model": model.fingerprint, "k": k, "norm": "final_scale", "version": 1,
                       **({"centre": True} if centre else {})})  # RMSNorm keys unchanged
    path = cache_dir("logit_lens") / f"{key}.pt"
    if path.exists():
        saved = torch.load(path)
        return TopTokens(saved["values"], saved["indices"]), True
    scale = final_norm_scale(model)
    if centre:  # LayerNorm: the readout of d is g * (d - mean(d)) (module docstring)
        W_dec = W_dec - W_dec.mean(dim=1, keepdim=True)
    result = top_tokens(lens_directions(W_dec, scale), model.W_U.detach(), k, feature_chunk, vocab_chunk, desc=desc)
    with atomic_path(path) as tmp:
        torch.save({"values": result.values, "indices": result.indices}, tmp)
    return result, False


def final_norm_scale(model: Any) -> torch.Tensor | None:
    """The learned per-dimension scale of the model's final norm (None if it has none).

    RMSNorm's ``w`` for Gemma, LayerNorm's weight ``w`` for GPT-2-style models (its bias is
    not a scale; see the module docstring). A HookedLM says so itself; a bare stand-in with
    ``tl.ln_final.w`` (tests) is read directly."""
    if hasattr(model, "final_norm_scale"):
        return model.final_norm_scale
    w = getattr(getattr(model.tl, "ln_final", None), "w", None)
    return None if w is None else w.detach().to("cpu", torch.float32)


def final_norm_centres(model: Any) -> bool:
    """Whether the model's final norm subtracts the mean (LayerNorm) before scaling."""
    return bool(getattr(model, "final_norm_centres", False))
