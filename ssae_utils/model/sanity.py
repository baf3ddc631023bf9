"""Quick facts about a loaded model on a few texts: loss, splice sanity, residual norms, speed.

Stage 00 reports these so a reader sees that the model works (CE on ordinary text, an
identity splice that changes nothing, a zero splice that hurts) and what the hooked residual
looks like: its typical norm and the rare tokens with outsized norms, which carry a large
share of the variance and need deliberate handling in SAE training.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from ssae_utils.model.hooked import HookedLM

MAX_CONTEXTS = 8  # bounds the cost: 3 CE passes over 8 x 128 tokens take ~12 s for Gemma 3 270M on 2 cores


def _contexts(lm: "HookedLM", texts: Sequence[str], context_length: int) -> torch.Tensor:
    """Stream-packed contexts, shortened until the texts fill at least one."""
    if not any(text.strip() for text in texts):
        raise ValueError("the sanity-check texts are empty: give at least one non-empty document")
    length = context_length
    while length >= 2:
        tokens = lm.tokenize_contexts(list(texts), length)
        if len(tokens):
            return tokens[:MAX_CONTEXTS]
        length //= 2
    raise ValueError("the sanity-check texts are too short for even one two-token context")


def _keep_bos(splice_rest):
    return lambda resid: torch.cat([resid[:, :1], splice_rest(resid[:, 1:])], dim=1)


@torch.no_grad()
def sanity_checks(lm: "HookedLM", texts: Sequence[str], context_length: int | None = None) -> dict[str, float]:
    tokens = _contexts(lm, texts, lm.context_length if context_length is None else context_length)
    start = time.perf_counter()
    resid = lm.resid_at_hook(tokens)
    resid_s = time.perf_counter() - start
    start = time.perf_counter()
    ce_clean = lm.ce_from_resid(resid, tokens).item()
    ce_s = time.perf_counter() - start
    ce_identity = lm.ce_from_resid(resid.clone(), tokens).item()
    ce_zero = lm.ce_from_resid(_keep_bos(torch.zeros_like)(resid), tokens).item()

    norms = resid[:, 1:].norm(dim=-1).flatten().float()  # BOS left out: its norm is in a class of its own
    squares = norms**2
    median = norms.median().item()
    facts: dict[str, float] = {
        "contexts": float(tokens.shape[0]),
        "context_length": float(tokens.shape[1]),
        "ce_clean_nats_per_token": ce_clean,
        "ce_identity_splice_abs_diff": abs(ce_identity - ce_clean),
        "ce_zero_splice_keep_bos": ce_zero,
        "resid_norm_median": median,
        "resid_norm_p99": norms.quantile(0.99).item(),
        "resid_norm_max": norms.max().item(),
        "bos_norm_mean": resid[:, 0].norm(dim=-1).mean().item(),
    }
    for factor in (3, 10):
        big = norms > factor * median
        facts[f"share_tokens_norm_gt_{factor}x_median"] = big.float().mean().item()
        facts[f"share_sq_norm_gt_{factor}x_median"] = (squares[big].sum() / squares.sum()).item()
    facts["resid_at_hook_tokens_per_s"] = tokens.numel() / max(resid_s, 1e-9)
    facts["ce_from_resid_ms_per_token"] = 1000 * ce_s / tokens.numel()
    return facts
