"""What a backend provides: ``load(cfg) -> HookedLM``; HF-sourced ones share the conversion."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from ssae_utils.io import stable_hash
from ssae_utils.model.config import ModelConfig
from ssae_utils.model.convert import hooked_from_hf
from ssae_utils.model.hooked import HookedLM

# Bump when a change here alters activations for the same weights (it keys activation caches).
MODEL_CODE_VERSION = 1


@dataclass
class HFSource:
    """A loaded Hugging Face causal LM, its tokenizer and an id of its exact weights."""

    model: Any
    tokenizer: Any
    weights_id: str


class Backend(ABC):
    name: ClassVar[str]  # set by @register_backend
    # Why ``reference.compare_with_hf`` cannot check this backend (no local HF twin), if so.
    hf_reference_skip_reason: ClassVar[str | None] = None

    @abstractmethod
    def load(self, cfg: ModelConfig) -> HookedLM: ...

    def fingerprint(self, cfg: ModelConfig, weights_id: str) -> str:
        """Stable id of the computation that produces activations (not of the hook layer)."""
        return stable_hash({"model": self.name, "weights": weights_id, "dtype": cfg.resolved_dtype, "code": MODEL_CODE_VERSION})


class HFGemma3Backend(Backend):
    """Backends whose weights arrive as an HF ``Gemma3ForCausalLM``; converted to TransformerLens."""

    @abstractmethod
    def load_hf(self, cfg: ModelConfig) -> HFSource:
        """The HF model in ``cfg``'s dtype on the CPU, its tokenizer and weights id (offline)."""

    def load(self, cfg: ModelConfig) -> HookedLM:
        source = self.load_hf(cfg)
        device = cfg.resolved_device
        tl_model = hooked_from_hf(source.model, source.tokenizer, dtype=cfg.torch_dtype, device=device, model_name=self.name)
        del source.model  # the HookedTransformer holds its own copy of every weight
        return HookedLM(
            tl_model,
            tl_model.tokenizer,
            name=self.name,
            hook_layer=cfg.hook_layer,
            fingerprint=self.fingerprint(cfg, source.weights_id),
            ce_chunk_tokens=cfg.ce_chunk_tokens,
            context_length=cfg.context_length,
        )
