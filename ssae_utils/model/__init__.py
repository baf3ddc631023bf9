"""The language-model layer: a registry of backends behind one interface, ``HookedLM``.

    from ssae_utils.model import ModelConfig, load_model
    lm = load_model(ModelConfig.embedded())          # Gemma 3 270M, blocks.12.hook_resid_post
    tokens = lm.tokenize_contexts(texts, 128)        # [n, 128], BOS first
    resid = lm.resid_at_hook(tokens)                 # [n, 128, 640], layers 0..12 only
    ce = lm.ce_from_resid(sae_splice(resid), tokens) # patched next-token CE (nats/token)

Backends: ``tiny-random-gemma3`` (smoke, offline, seconds), ``gemma-3-270m-gguf`` (embedded,
from PyPI), ``gemma-2b`` (paper, from the hub).
"""

from ssae_utils.model.config import ModelConfig, TinySpec
from ssae_utils.model.contexts import Contexts, pack_contexts
from ssae_utils.model.hooked import HookedLM, Splice
from ssae_utils.model.registry import available_models, get_backend, load_model, register_backend

LoadedModel = HookedLM  # alias: both names are used in the design notes

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
