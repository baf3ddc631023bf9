"""Model backends, registered by name with a decorator (a new model is a new class, not a branch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from ssae_utils.model.backends.base import Backend
    from ssae_utils.model.config import ModelConfig
    from ssae_utils.model.hooked import HookedLM

_BACKENDS: dict[str, "type[Backend]"] = {}
_BUILTIN_MODULES = (
    "ssae_utils.model.backends.tiny",
    "ssae_utils.model.backends.gemma_gguf",
    "ssae_utils.model.backends.hub",
)

B = TypeVar("B", bound="type[Backend]")


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator: make ``ModelConfig(name=...)`` load with this backend."""

    def decorate(cls: B) -> B:
        if name in _BACKENDS and _BACKENDS[name] is not cls:
            raise ValueError(f"model backend {name!r} is already registered by {_BACKENDS[name].__qualname__}")
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return decorate


def _import_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def available_models() -> list[str]:
    _import_builtins()
    return sorted(_BACKENDS)


def get_backend(name: str) -> "Backend":
    _import_builtins()
    if name not in _BACKENDS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name]()


def load_model(cfg: "ModelConfig") -> "HookedLM":
    """Load (building or converting once, then from the cache) the model ``cfg`` names."""
    return get_backend(cfg.name).load(cfg)
