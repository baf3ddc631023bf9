"""``HookedLM.ce_from_final``'s vocabulary-blocked online logsumexp against the materialised
reference ``F.cross_entropy(logits_from_final(x), targets)``.

Both tiny architectures: the tiny Gemma 3 (no unembedding bias) and tiny-random-gpt2 (with
one), with and without an output soft-cap, with the default block and with blocks that do
not divide the vocabulary, mean and per-token, with and without a padding mask, and the
gradient with respect to the final residual.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ssae_utils.model.hooked as hooked
from ssae_utils.model import ModelConfig, load_model
from ssae_utils.model.backends.toy_text import toy_corpus
from ssae_utils.model.config import TinySpec

ATOL = 1e-4  # nats per token


@pytest.fixture(scope="module")
def gpt2_lm(tiny_cache):
    # the same model tests/model/test_tiny_gpt2.py builds (shared session cache)
    with tiny_cache():
        return load_model(ModelConfig(name="tiny-random-gpt2", hook_layer=1, context_length=32, tiny=TinySpec(train_steps=40)))


@pytest.fixture(params=["gemma", "gpt2"])
def lm(request, tiny_lm, gpt2_lm):
    model = tiny_lm if request.param == "gemma" else gpt2_lm
    assert model._has_unembed_bias == (request.param == "gpt2")  # both cases covered
    return model


@pytest.fixture(params=[None, 5.0, 30.0], ids=["no-cap", "cap5", "cap30"])
def cap(request, lm, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(lm.tl.cfg, "output_logits_soft_cap", request.param)
    else:
        assert not hooked.softcap_enabled(lm.tl.cfg.output_logits_soft_cap)
    return request.param


@pytest.fixture(params=[None, 7, 100], ids=["default-block", "block7", "block100"])
def block(request, lm, monkeypatch):
    if request.param is not None:
        assert lm.vocab_size % request.param != 0  # uneven blocks: the last one is short
        monkeypatch.setattr(hooked, "UNEMBED_BLOCK", request.param)
    else:
        assert lm.vocab_size <= hooked.UNEMBED_BLOCK  # one (partial) block
    return request.param


def _tokens(lm):
    return lm.tokenize_contexts(toy_corpus(40, seed=123), 24)[:5]


def _final(lm, tokens):
    with torch.no_grad():
        return lm.run_from_hook(lm.resid_at_hook(tokens))


def _reference(lm, final, tokens):
    """The materialising CE the blocked one replaces, per token [b, s-1]."""
    logits = lm.logits_from_final(final[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none").reshape(tokens.shape[0], -1)


def test_blocked_ce_equals_the_materialised_cross_entropy(lm, cap, block):
    tokens = _tokens(lm)
    final = _final(lm, tokens)
    want = _reference(lm, final, tokens)
    per_token = lm.ce_from_final(final, tokens, per_token=True)
    assert per_token.dtype == torch.float32 and per_token.shape == want.shape
    torch.testing.assert_close(per_token, want, atol=ATOL, rtol=0)
    torch.testing.assert_close(lm.ce_from_final(final, tokens), want.mean(), atol=ATOL, rtol=0)


def test_the_soft_cap_is_applied_in_every_block(lm, monkeypatch):
    tokens = _tokens(lm)
    final = _final(lm, tokens)
    monkeypatch.setattr(hooked, "UNEMBED_BLOCK", 7)
    plain = lm.ce_from_final(final, tokens, per_token=True)
    monkeypatch.setattr(lm.tl.cfg, "output_logits_soft_cap", 2.0)
    capped = lm.ce_from_final(final, tokens, per_token=True)
    assert (capped - plain).abs().max() > 0.1  # the cap changes the CE here...
    torch.testing.assert_close(capped, _reference(lm, final, tokens), atol=ATOL, rtol=0)  # ...exactly as logits_from_final


@pytest.mark.parametrize("chunk", [1, 7, 512])
def test_valid_mask_per_token_and_mean(lm, cap, block, chunk):
    tokens = _tokens(lm)
    final = _final(lm, tokens)
    want = _reference(lm, final, tokens)
    valid = torch.rand(want.shape) > 0.4
    valid[:, -3:] = False           # trailing padding, as spliced_ce has it
    valid[0] = False                # a context with no prediction at all
    # padded positions are never unembedded: NaN there must not reach the result
    poisoned = final.clone()
    poisoned[:, :-1][~valid] = float("nan")
    model = lm.with_hook_layer(lm.hook_layer)
    model.ce_chunk_tokens = chunk
    per_token = model.ce_from_final(poisoned, tokens, per_token=True, valid=valid)
    assert per_token.shape == want.shape
    torch.testing.assert_close(per_token[valid], want[valid], atol=ATOL, rtol=0)
    assert (per_token[~valid] == 0).all()
    mean = model.ce_from_final(poisoned, tokens, valid=valid)
    torch.testing.assert_close(mean, want[valid].mean(), atol=ATOL, rtol=0)
    none = torch.zeros_like(valid)
    assert (model.ce_from_final(poisoned, tokens, per_token=True, valid=none) == 0).all()


def test_gradient_equals_the_materialised_one(lm, cap, block):
    tokens = _tokens(lm)
    final = _final(lm, tokens)
    weights = torch.rand(tokens.shape[0], tokens.shape[1] - 1)  # a non-uniform upstream gradient
    grads = []
    for ce in (lambda x: lm.ce_from_final(x, tokens, per_token=True), lambda x: _reference(lm, x, tokens)):
        x = final.clone().requires_grad_(True)
        (ce(x) * weights).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    assert grads[0][:, -1].abs().max() == 0  # the last position predicts nothing


def test_out_of_range_targets_are_refused_not_read_as_zero(tiny_lm):
    tokens = _tokens(tiny_lm)
    final = _final(tiny_lm, tokens)
    bad = tokens.clone()
    bad[1, 5] = tiny_lm.vocab_size
    with pytest.raises(IndexError, match="target token ids"):
        tiny_lm.ce_from_final(final, bad)
    valid = torch.ones(tokens.shape[0], tokens.shape[1] - 1, dtype=torch.bool)
    valid[1, 4] = False  # the bad id is the target of prediction 4: masked out, so never read
    tiny_lm.ce_from_final(final, bad, valid=valid)
