"""Paper profile: Gemma-2b from the Hugging Face hub through TransformerLens (GPU box only).

Needs network access and acceptance of the Gemma licence on the hub (``HF_TOKEN``). Not run
in this repository's CPU environment; its interface is the same HookedLM.
"""

from __future__ import annotations

import warnings

from transformer_lens import HookedTransformer

from ssae_utils.model.backends.base import Backend
from ssae_utils.model.config import ModelConfig
from ssae_utils.model.hooked import HookedLM
from ssae_utils.model.registry import register_backend

HUB_NAME = "google/gemma-2b"  # the model of SAELens release gemma-2b-res-jb


@register_backend("gemma-2b")
class Gemma2bHubBackend(Backend):
    hf_reference_skip_reason = "loaded from the hub by TransformerLens; no local Hugging Face copy to compare with"

    def load(self, cfg: ModelConfig) -> HookedLM:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # No weight processing: residuals equal the HF model's, as SAELens's SAEs expect.
            model = HookedTransformer.from_pretrained_no_processing(
                HUB_NAME, device=cfg.resolved_device, dtype=cfg.torch_dtype, default_padding_side="right"
            )
        return HookedLM(
            model,
            model.tokenizer,
            name=self.name,
            hook_layer=cfg.hook_layer,
            fingerprint=self.fingerprint(cfg, HUB_NAME),
            ce_chunk_tokens=cfg.ce_chunk_tokens,
            context_length=cfg.context_length,
        )
