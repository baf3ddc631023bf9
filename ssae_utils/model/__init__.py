"""The language-model layer: a registry of backends behind one interface, ``HookedLM``.

    from ssae_utils.model import ModelConfig, load_model
    lm = load_model(ModelConfig.embedded())          # Gemma 3 270M, blocks.12.hook_resid_post
    tokens = lm.tokenize_contexts(texts, 128)        # [n, 128], BOS first
    resid = lm.resid_at_hook(tokens)                 # [n, 128, 640], layers 0..12 only
    ce = lm.ce_from_resid(sae_splice(resid), tokens) # patched next-token CE (nats/token)

Backends: ``tiny-random-gemma3`` (smoke, offline, seconds), ``tiny-random-gpt2`` (a second,
GPT-2-style tiny architecture built in code; see docs/your_own_model.md), ``gemma-3-270m-gguf``
(embedded, from PyPI), ``gemma-2b`` (paper, from the hub).
"""

from typing import Any

from ssae_utils.model.config import ModelConfig, TinySpec
from ssae_utils.model.registry import available_models, get_backend, load_model, register_backend

# Imported on first use: they pull in torch/TransformerLens, which configs never need.
_LAZY = {
    "HookedLM": ("ssae_utils.model.hooked", "HookedLM"),
    "LoadedModel": ("ssae_utils.model.hooked", "HookedLM"),  # alias used in the design notes
    "Splice": ("ssae_utils.model.hooked", "Splice"),
    "Contexts": ("ssae_utils.model.contexts", "Contexts"),
    "pack_contexts": ("ssae_utils.model.contexts", "pack_contexts"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Contexts",
    "HookedLM",
    "LoadedModel",
    "ModelConfig",
    "Splice",
    "TinySpec",
    "available_models",
    "get_backend",
    "load_model",
    "pack_contexts",
    "register_backend",
]
