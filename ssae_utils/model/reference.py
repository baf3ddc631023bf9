"""Check a loaded HookedLM against the Hugging Face model it was converted from.

TransformerLens re-implements Gemma 3; this check runs the original HF model on the same
contexts and reports how far the hooked residual and the loss are from HF's own. Stage 00
shows the numbers, so a reader sees the conversion is faithful on the model they run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ssae_utils.model.backends.base import HFGemma3Backend
from ssae_utils.model.config import ModelConfig
from ssae_utils.model.registry import get_backend

if TYPE_CHECKING:
    from ssae_utils.model.hooked import HookedLM

log = logging.getLogger(__name__)


@torch.no_grad()
def compare_with_hf(cfg: ModelConfig, lm: "HookedLM", texts: Sequence[str], max_contexts: int = 4) -> dict[str, Any]:
    """Max |TL - HF| of the hooked residual (absolute and relative) and the CE difference.

    A backend without a local HF source (the paper's hub model, models built in code such as
    ``tiny-random-gpt2``) is skipped: the result is ``{"hf_reference_skipped": reason}``, the
    reason being the backend's ``hf_reference_skip_reason`` if it has one.
    """
    backend = get_backend(cfg.name)
    if not isinstance(backend, HFGemma3Backend):
        reason = getattr(backend, "hf_reference_skip_reason", None) or f"{cfg.name} has no local Hugging Face source to compare with"
        log.info("HF reference check skipped for %s: %s", cfg.name, reason)
        return {"hf_reference_skipped": reason}
    tokens = lm.tokenize_contexts(list(texts))[:max_contexts]
    if len(tokens) == 0:
        raise ValueError("the reference texts are too short for one context")
    source = backend.load_hf(cfg)
    hf = source.model.eval()
    out = hf(input_ids=tokens, labels=tokens, output_hidden_states=True)
    # hidden_states[0] is the embedding output, so block L's output is entry L + 1
    reference = out.hidden_states[lm.hook_layer + 1].float()
    ours = lm.resid_at_hook(tokens).float()
    diff = (ours - reference).abs()
    ce_ours = float(lm.ce_loss(tokens))
    return {
        "hf_contexts": float(tokens.shape[0]),
        "hf_resid_max_abs_diff": float(diff.max()),
        "hf_resid_max_rel_diff": float((diff.norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-12)).max()),
        "hf_ce": float(out.loss),
        "hf_ce_abs_diff": abs(ce_ours - float(out.loss)),
    }
