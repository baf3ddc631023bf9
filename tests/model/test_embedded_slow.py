"""The real Gemma 3 270M (embedded profile) against its Hugging Face forward pass.

Skipped unless the converted checkpoint is already in the cache (build it once with
``python -c "from ssae_utils.model.backends.gemma_gguf import convert_checkpoint as c; c()"``,
about a minute). Takes ~30 s and ~4 GB of memory.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ssae_utils.model import ModelConfig, load_model
from ssae_utils.model.backends.gemma_gguf import is_converted
from ssae_utils.model.registry import get_backend

from .hf_tap import HFLayerTap

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not is_converted(), reason="Gemma 3 270M checkpoint not converted in the cache yet"),
]

# Plain English prose (written for this test), so CE is a sanity check of the whole model.
ENGLISH = [
    "The river runs through the middle of the old town, and in the summer children swim near the "
    "stone bridge while their parents sit in the shade of the trees. In the evening the cafes fill "
    "with people who come to watch the sun go down over the hills.",
    "Scientists have long known that light travels faster than sound. During a thunderstorm you "
    "see the flash of lightning before you hear the thunder, and by counting the seconds between "
    "them you can estimate how far away the storm is.",
    "The committee met on Tuesday to discuss the budget for the coming year. After a long debate, "
    "the members agreed to spend more money on schools and roads, but they postponed a decision on "
    "the new library until the next meeting.",
]


@pytest.fixture(scope="module")
def embedded():
    cfg = ModelConfig.embedded()
    lm = load_model(cfg)
    hf = get_backend(cfg.name).load_hf(cfg).model
    tokens = lm.tokenize_contexts(ENGLISH * 2, 64)
    return lm, hf, tokens


def test_our_config_matches_transformer_lens_own_270m_config(embedded):
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    lm, _, _ = embedded
    reference = convert_hf_model_config("google/gemma-3-270m")  # name-based: no hub access
    ours = lm.tl.cfg
    for key in ("d_model", "d_head", "n_heads", "n_key_value_heads", "d_mlp", "n_layers", "d_vocab", "act_fn",
                "normalization_type", "rotary_base", "rotary_base_local", "window_size", "attn_types",
                "use_qk_norm", "use_normalization_before_and_after", "gated_mlp", "final_rms"):
        assert getattr(ours, key) == reference[key], key
    assert ours.attn_scale == 16.0 and abs(ours.eps - reference["eps"]) < 1e-9


def test_layer12_residual_and_ce_match_hf(embedded):
    lm, hf, tokens = embedded
    assert lm.hook_name == "blocks.12.hook_resid_post" and tokens.shape[1] == 64
    tap = HFLayerTap(hf)
    try:
        with torch.no_grad():
            hf_loss = hf(input_ids=tokens, labels=tokens).loss.item()
    finally:
        tap.close()
    resid = lm.resid_at_hook(tokens)
    reference = tap.outputs[12]
    rel = ((resid - reference).norm(dim=-1) / reference.norm(dim=-1)).max().item()
    assert rel < 1e-4, rel  # fp32 rounding only (measured ~3e-6)
    ce = lm.ce_loss(tokens).item()
    assert abs(ce - hf_loss) < 1e-4
    assert 1.0 < ce < 4.5  # ordinary English; a broken conversion gives ~12 (uniform is 12.5)


def test_splices_on_the_real_model(embedded):
    lm, _, tokens = embedded
    resid = lm.resid_at_hook(tokens)
    clean = lm.ce_from_resid(resid, tokens).item()
    assert abs(clean - lm.ce_loss(tokens).item()) < 1e-5
    assert abs(lm.ce_loss(tokens, splice=lambda r: r.clone()).item() - clean) < 1e-5
    keep_bos_zero = lambda r: torch.cat([r[:, :1], torch.zeros_like(r[:, 1:])], 1)  # noqa: E731
    assert lm.ce_from_resid(keep_bos_zero(resid), tokens).item() > clean + 3.0


def test_resid_at_hook_stops_after_block_12(embedded):
    lm, _, tokens = embedded
    calls = []
    handles = [b.register_forward_hook(lambda *_a, i=i: calls.append(i)) for i, b in enumerate(lm.tl.blocks)]
    handles.append(lm.tl.unembed.register_forward_hook(lambda *_a: calls.append("unembed")))
    try:
        lm.resid_at_hook(tokens[:1])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == list(range(13))


def test_fingerprint_is_keyed_by_the_gguf_and_dtype(embedded):
    from ssae_utils.model.backends.gemma_gguf import checkpoint_dir
    from ssae_utils.model.storage import read_meta

    lm, _, _ = embedded
    backend = get_backend(lm.name)
    cfg = ModelConfig.embedded()
    gguf_sha = read_meta(checkpoint_dir())["gguf_sha256"]
    assert lm.fingerprint == backend.fingerprint(cfg, gguf_sha)
    assert lm.fingerprint == backend.fingerprint(dataclasses.replace(cfg, hook_layer=6), gguf_sha)
    assert lm.fingerprint != backend.fingerprint(dataclasses.replace(cfg, dtype="bfloat16"), gguf_sha)
