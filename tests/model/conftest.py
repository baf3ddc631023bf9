"""The tiny Gemma 3 model, built once per session in a temporary cache, with its HF twin."""

from __future__ import annotations

import contextlib

import pytest
import torch

from ssae_utils.model import HookedLM, ModelConfig, load_model
from ssae_utils.model.backends.base import HFSource
from ssae_utils.model.backends.toy_text import toy_corpus
from ssae_utils.model.registry import get_backend


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """A context manager pointing SSAE_CACHE at one session-wide temporary folder.

    Set only while loading, so that other tests (and the slow test's look-up of the real
    embedded checkpoint) still see their own cache.
    """
    root = str(tmp_path_factory.mktemp("model_cache"))

    @contextlib.contextmanager
    def use():
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SSAE_CACHE", root)
            yield

    return use


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    return ModelConfig.smoke()


@pytest.fixture(scope="session")
def tiny_lm(tiny_cfg, tiny_cache) -> HookedLM:
    with tiny_cache():
        return load_model(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_hf(tiny_cfg, tiny_cache) -> HFSource:
    with tiny_cache():
        return get_backend(tiny_cfg.name).load_hf(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_tokens(tiny_lm) -> torch.Tensor:
    # Held-out sentences (another seed than the training corpus), 2x the sliding window.
    return tiny_lm.tokenize_contexts(toy_corpus(40, seed=123), 24)[:6]
