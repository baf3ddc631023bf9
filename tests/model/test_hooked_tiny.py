"""HookedLM on the tiny Gemma 3 model, checked against the Hugging Face forward pass.

The tiny model goes through the same conversion as the embedded 270M model, so these tests
cover the real path: Gemma 3 norms, GQA, q/k norms, local+global RoPE, sliding windows.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ssae_utils.model import ModelConfig, load_model
from ssae_utils.model.config import TinySpec
from ssae_utils.model.registry import get_backend

from .hf_tap import HFLayerTap


def _hf_per_token_ce(hf_model, tokens):
    with torch.no_grad():
        logits = hf_model(input_ids=tokens).logits.float()
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")


def test_interface_attributes(tiny_lm, tiny_cfg):
    spec = tiny_cfg.tiny
    assert (tiny_lm.d_model, tiny_lm.n_layers, tiny_lm.vocab_size) == (spec.d_model, spec.n_layers, spec.vocab_size)
    assert tiny_lm.hook_layer == tiny_cfg.hook_layer and tiny_lm.hook_name == tiny_cfg.hook_name
    assert tiny_lm.bos_token_id == 2 and tiny_lm.tokenizer("a cat").input_ids[0] == 2
    assert tiny_lm.W_U.shape == (spec.d_model, spec.vocab_size)
    assert isinstance(tiny_lm.fingerprint, str) and len(tiny_lm.fingerprint) == 16
    assert not any(p.requires_grad for p in tiny_lm.tl.parameters())


def test_tokenize_contexts_shapes_and_bos(tiny_lm, tiny_tokens):
    assert tiny_tokens.dtype == torch.long and tiny_tokens.shape == (6, 24)
    assert (tiny_tokens[:, 0] == tiny_lm.bos_token_id).all()
    default_length = tiny_lm.tokenize_contexts(["The cat sees a dog."] * 40)
    assert default_length.shape[1] == tiny_lm.context_length
    with pytest.raises(TypeError, match="not a single string"):
        tiny_lm.tokenize_contexts("The cat sees a dog.", 8)


def test_resid_matches_hf_hidden_states_at_every_layer(tiny_lm, tiny_hf, tiny_tokens):
    tap = HFLayerTap(tiny_hf.model)
    try:
        with torch.no_grad():
            hidden = tiny_hf.model(input_ids=tiny_tokens, output_hidden_states=True).hidden_states
    finally:
        tap.close()
    for layer in range(tiny_lm.n_layers):
        resid = tiny_lm.with_hook_layer(layer).resid_at_hook(tiny_tokens)
        torch.testing.assert_close(resid, tap.outputs[layer], atol=1e-4, rtol=1e-4)
        if layer < tiny_lm.n_layers - 1:  # HF's last hidden state has the final norm applied
            torch.testing.assert_close(resid, hidden[layer + 1], atol=1e-4, rtol=1e-4)


def test_resid_at_hook_runs_no_later_layer_and_no_unembedding(tiny_lm, tiny_tokens):
    calls: list[str] = []
    modules = {f"block{i}": block for i, block in enumerate(tiny_lm.tl.blocks)}
    modules |= {"ln_final": tiny_lm.tl.ln_final, "unembed": tiny_lm.tl.unembed}
    handles = [m.register_forward_hook(lambda *_a, name=name: calls.append(name)) for name, m in modules.items()]
    try:
        tiny_lm.resid_at_hook(tiny_tokens)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == [f"block{i}" for i in range(tiny_lm.hook_layer + 1)]


def test_chunked_ce_equals_unchunked_hf_loss(tiny_lm, tiny_hf, tiny_tokens):
    hf_per_token = _hf_per_token_ce(tiny_hf.model, tiny_tokens)
    for chunk in (1, 7, 10_000):
        lm = tiny_lm.with_hook_layer(tiny_lm.hook_layer)
        lm.ce_chunk_tokens = chunk
        per_token = lm.ce_loss(tiny_tokens, per_token=True)
        assert per_token.shape == (tiny_tokens.shape[0], tiny_tokens.shape[1] - 1)
        torch.testing.assert_close(per_token, hf_per_token, atol=1e-4, rtol=1e-4)
        assert abs(lm.ce_loss(tiny_tokens).item() - hf_per_token.mean().item()) < 1e-4
    with torch.no_grad():
        hf_loss = tiny_hf.model(input_ids=tiny_tokens, labels=tiny_tokens).loss.item()
    assert abs(tiny_lm.ce_loss(tiny_tokens).item() - hf_loss) < 1e-4


def test_trained_tiny_model_beats_uniform(tiny_lm, tiny_tokens):
    assert tiny_lm.ce_loss(tiny_tokens).item() < 0.7 * torch.log(torch.tensor(float(tiny_lm.vocab_size))).item()


def test_identity_splice_leaves_ce_unchanged(tiny_lm, tiny_tokens):
    clean = tiny_lm.ce_loss(tiny_tokens)
    spliced = tiny_lm.ce_loss(tiny_tokens, splice=lambda resid: resid.clone())
    assert abs(clean.item() - spliced.item()) < 1e-5


def test_zero_splice_raises_ce(tiny_lm, tiny_tokens):
    clean = tiny_lm.ce_loss(tiny_tokens).item()
    zeroed = tiny_lm.ce_loss(tiny_tokens, splice=torch.zeros_like).item()
    assert zeroed > clean + 1.0


def test_splice_with_the_wrong_shape_is_refused(tiny_lm, tiny_tokens):
    with pytest.raises(ValueError, match="splice returned shape"):
        tiny_lm.ce_loss(tiny_tokens, splice=lambda resid: resid[:, 1:])


def test_ce_from_resid_reuses_one_clean_prefix(tiny_lm, tiny_tokens):
    resid = tiny_lm.resid_at_hook(tiny_tokens)
    torch.testing.assert_close(tiny_lm.ce_from_resid(resid, tiny_tokens), tiny_lm.ce_loss(tiny_tokens), atol=1e-6, rtol=0)
    half = tiny_lm.ce_from_resid(resid * 0.5, tiny_tokens, per_token=True)
    torch.testing.assert_close(half, tiny_lm.ce_loss(tiny_tokens, splice=lambda r: r * 0.5, per_token=True), atol=1e-6, rtol=0)
    final = tiny_lm.run_from_hook(resid)
    torch.testing.assert_close(tiny_lm.ce_from_final(final, tiny_tokens), tiny_lm.ce_loss(tiny_tokens), atol=1e-6, rtol=0)


def test_logits_and_final_norm_match_hf(tiny_lm, tiny_hf, tiny_tokens):
    with torch.no_grad():
        hf_logits = tiny_hf.model(input_ids=tiny_tokens[:2]).logits
    final = tiny_lm.run_from_hook(tiny_lm.resid_at_hook(tiny_tokens[:2]))
    torch.testing.assert_close(tiny_lm.logits_from_final(final), hf_logits.float(), atol=1e-4, rtol=1e-4)
    direct = tiny_lm.final_norm(final) @ tiny_lm.W_U  # the logit-lens path, no soft-cap here
    torch.testing.assert_close(direct, hf_logits, atol=1e-4, rtol=1e-4)


def test_gradients_flow_through_a_splice_but_not_into_the_model(tiny_lm, tiny_tokens):
    scale = torch.ones((), requires_grad=True)
    loss = tiny_lm.ce_loss(tiny_tokens, splice=lambda resid: resid * scale)
    loss.backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    assert all(p.grad is None for p in tiny_lm.tl.parameters())


@pytest.mark.parametrize(
    "tokens, error, match",
    [
        ([[2, 5, 6]], TypeError, "torch.LongTensor"),
        (torch.tensor([2, 5, 6]), ValueError, r"\[batch, seq\]"),
        (torch.tensor([[2.0, 5.0]]), TypeError, "integer ids"),
    ],
)
def test_bad_token_inputs_raise_clear_errors(tiny_lm, tokens, error, match):
    with pytest.raises(error, match=match):
        tiny_lm.resid_at_hook(tokens)
    with pytest.raises(error, match=match):
        tiny_lm.ce_loss(tokens)


def test_bad_residual_inputs_raise_clear_errors(tiny_lm, tiny_tokens):
    with pytest.raises(ValueError, match="residual must be"):
        tiny_lm.ce_from_resid(torch.zeros(2, 24, 3), tiny_tokens[:2])
    with pytest.raises(ValueError, match="does not match tokens"):
        tiny_lm.ce_from_resid(torch.zeros(2, 20, tiny_lm.d_model), tiny_tokens[:2])


def test_fingerprint_is_stable_and_tracks_weights_and_dtype(tiny_cfg, tiny_lm, tiny_cache):
    with tiny_cache():
        again = load_model(tiny_cfg)
        other_layer = load_model(dataclasses.replace(tiny_cfg, hook_layer=0))
        other_weights = get_backend(tiny_cfg.name).load_hf(dataclasses.replace(tiny_cfg, tiny=TinySpec(train_steps=3)))
    assert again.fingerprint == tiny_lm.fingerprint == other_layer.fingerprint  # the hook is keyed separately
    backend = get_backend(tiny_cfg.name)
    assert backend.fingerprint(tiny_cfg, "w1") != backend.fingerprint(dataclasses.replace(tiny_cfg, dtype="bfloat16"), "w1")
    assert backend.fingerprint(tiny_cfg, "w1") != backend.fingerprint(tiny_cfg, "w2")
    with tiny_cache():
        base_weights = backend.load_hf(tiny_cfg).weights_id
    assert other_weights.weights_id != base_weights


def test_final_logit_softcap_matches_hf(tiny_cache):
    cfg = ModelConfig(tiny=TinySpec(final_logit_softcap=2.0, train_steps=20))
    with tiny_cache():
        lm = load_model(cfg)
        hf = get_backend(cfg.name).load_hf(cfg).model
    tokens = lm.tokenize_contexts(["The small cat hears a song. A dog moves quickly."] * 4, 12)
    assert lm.tl.cfg.output_logits_soft_cap == 2.0
    torch.testing.assert_close(lm.ce_loss(tokens, per_token=True), _hf_per_token_ce(hf, tokens), atol=1e-4, rtol=1e-4)
    assert lm.logits_from_final(lm.run_from_hook(lm.resid_at_hook(tokens))).abs().max() <= 2.0


def test_sanity_checks_report_a_working_model(tiny_lm):
    from ssae_utils.model.backends.toy_text import toy_corpus

    facts = tiny_lm.sanity_checks(toy_corpus(12, seed=9))
    assert facts["contexts"] >= 1 and facts["ce_identity_splice_abs_diff"] < 1e-5
    assert facts["ce_zero_splice_keep_bos"] > facts["ce_clean_nats_per_token"]
    assert facts["resid_norm_median"] > 0 and 0 <= facts["share_tokens_norm_gt_3x_median"] <= 1
    assert all(isinstance(v, float) for v in facts.values())
    short = tiny_lm.sanity_checks(["A cat."])  # too short for one 32-token context: shrinks
    assert short["context_length"] < tiny_lm.context_length
    with pytest.raises(ValueError, match="empty"):
        tiny_lm.sanity_checks([""])


def test_valid_mask_computes_only_the_masked_predictions(tiny_lm, tiny_tokens):
    resid = tiny_lm.resid_at_hook(tiny_tokens)
    full = tiny_lm.ce_from_resid(resid, tiny_tokens, per_token=True)
    valid = torch.zeros_like(full, dtype=torch.bool)
    valid[0, :3] = True
    valid[-1, 1:] = True
    masked = tiny_lm.ce_from_resid(resid, tiny_tokens, per_token=True, valid=valid)
    assert torch.allclose(masked[valid], full[valid], atol=1e-6)
    assert (masked[~valid] == 0).all()
    mean = tiny_lm.ce_from_resid(resid, tiny_tokens, valid=valid)
    assert mean.item() == pytest.approx(full[valid].mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="valid mask"):
        tiny_lm.ce_from_resid(resid, tiny_tokens, valid=valid[:, :-1])
