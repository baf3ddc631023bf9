"""ModelConfig validation and the backend registry."""

from __future__ import annotations

import pytest

from ssae_utils.model import ModelConfig, available_models, get_backend, load_model, register_backend
from ssae_utils.model.backends.base import Backend
from ssae_utils.model.config import TinySpec

BUILTIN = {"tiny-random-gemma3", "tiny-random-gpt2", "gemma-3-270m-gguf", "gemma-2b"}


def test_builtin_backends_are_registered():
    assert BUILTIN <= set(available_models())


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match="tiny-random-gemma3") as err:
        ModelConfig(name="gpt-17")
    assert "gemma-3-270m-gguf" in str(err.value) and "gemma-2b" in str(err.value)
    with pytest.raises(KeyError, match="registered models"):
        get_backend("gpt-17")


def test_presets():
    assert ModelConfig.smoke().name == "tiny-random-gemma3"
    embedded = ModelConfig.embedded()
    assert (embedded.name, embedded.hook_layer, embedded.hook_name) == ("gemma-3-270m-gguf", 12, "blocks.12.hook_resid_post")
    paper = ModelConfig.paper()
    assert (paper.name, paper.hook_layer, paper.device) == ("gemma-2b", 12, "auto")


def test_round_trip_and_unknown_fields():
    cfg = ModelConfig(hook_layer=1, tiny=TinySpec(d_model=32, d_head=16, train_steps=0))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.tiny, TinySpec)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "layer": 3})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "float8"}, "model.dtype"),
        ({"device": "tpu"}, "model.device"),
        ({"hook_layer": -1}, "hook_layer"),
        ({"context_length": 1}, "context_length"),
        ({"ce_chunk_tokens": 0}, "ce_chunk_tokens"),
        ({"tiny": {"n_heads": 3, "n_kv_heads": 2}}, "n_kv_heads"),
    ],
)
def test_invalid_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_auto_device_resolves_here():
    assert ModelConfig(device="auto").resolved_device in ("cpu", "cuda")


def test_hook_layer_beyond_the_model_fails_at_load(tiny_cache):
    with tiny_cache(), pytest.raises(ValueError, match="outside this model's layers 0..3"):
        load_model(ModelConfig(hook_layer=4))


def test_register_backend_rejects_a_second_class_under_a_taken_name():
    class Other(Backend):
        def load(self, cfg):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="already registered"):
        register_backend("tiny-random-gemma3")(Other)


def test_paper_backend_wires_the_hub_model_without_touching_the_hub(monkeypatch, tiny_lm):
    """The gemma-2b path cannot run here; check its wiring with the tiny model standing in."""
    from ssae_utils.model.backends import hub

    seen = {}

    def fake_from_pretrained_no_processing(name, **kwargs):
        seen.update(kwargs, name=name)
        return tiny_lm.tl

    monkeypatch.setattr(hub.HookedTransformer, "from_pretrained_no_processing", fake_from_pretrained_no_processing)
    lm = load_model(ModelConfig(name="gemma-2b", hook_layer=1, device="cpu"))
    assert seen["name"] == "google/gemma-2b" and seen["device"] == "cpu" and seen["default_padding_side"] == "right"
    assert lm.name == "gemma-2b" and lm.hook_name == "blocks.1.hook_resid_post" and lm.tl is tiny_lm.tl
    assert lm.fingerprint != tiny_lm.fingerprint
