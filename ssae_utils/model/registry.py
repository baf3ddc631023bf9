"""Model backends, registered by name with a decorator (a new model is a new class, not a branch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from ssae_utils.model.backends.base import Backend
    from ssae_utils.model.config import ModelConfig
    from ssae_utils.model.hooked import HookedLM

_BACKENDS: dict[str, "type[Backend]"] = {}
# Where the built-in backends register themselves. Imported only when a backend is needed, so
# that building and validating configs never pays for importing transformers/TransformerLens.
_BUILTIN_MODULES = {
    "tiny-random-gemma3": "ssae_utils.model.backends.tiny",
    "tiny-random-gpt2": "ssae_utils.model.backends.tiny_gpt2",
    "gemma-3-270m-gguf": "ssae_utils.model.backends.gemma_gguf",
    "gemma-2b": "ssae_utils.model.backends.hub",
}

B = TypeVar("B", bound="type[Backend]")


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator: make ``ModelConfig(name=...)`` load with this backend."""

    def decorate(cls: B) -> B:
        builtin = _BUILTIN_MODULES.get(name)
        if builtin is not None and cls.__module__ != builtin:
            importlib.import_module(builtin)  # the built-in claims its name first
        if name in _BACKENDS and _BACKENDS[name] is not cls:
            raise ValueError(f"model backend {name!r} is already registered by {_BACKENDS[name].__qualname__}")
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return decorate


def available_models() -> list[str]:
    return sorted(set(_BUILTIN_MODULES) | set(_BACKENDS))


def get_backend(name: str) -> "Backend":
    if name not in _BACKENDS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _BACKENDS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(available_models())}")
    return _BACKENDS[name]()


def load_model(cfg: "ModelConfig") -> "HookedLM":
    """Load (building or converting once, then from the cache) the model ``cfg`` names."""
    if cfg.context_length is None:  # load_profile fills it from the pretrained GSAE's cfg.json
        raise ValueError("model.context_length is None (\"the pretrained GSAE's\") but was not resolved: load the "
                         "config with ssae_utils.config.load_profile (run notebook 00 first for a hub release, it "
                         "downloads the release's cfg.json) or set model.context_length")
    return get_backend(cfg.name).load(cfg)
