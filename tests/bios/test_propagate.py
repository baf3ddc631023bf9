"""The late-layer probe: ablation at the hook propagated through the later blocks, attribution
through them, and the pre-declared probe selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssae_utils.bios.attribution import shift_scores
from ssae_utils.bios.calibration import pick_probe_candidate, selection_record, wilson_interval
from ssae_utils.bios.probe import LinearProbe
from ssae_utils.bios.propagate import (
    HookContexts, hook_gradients, pooled_at_layers, pooled_probe_resid, sae_ablation, shift_scores_through,
)
from tests.bios.conftest import make_sae


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from ssae_utils.model import ModelConfig, load_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSAE_CACHE", str(tmp_path_factory.mktemp("model_cache")))
        return load_model(ModelConfig.smoke())     # 4 blocks, hook after block 2


TEXTS = ["She was a singer and she sang in the opera for years.", "He studied physics and taught at the university.",
         "Her first role came in a film by a famous director.", "His theory of heat changed chemistry."]


@pytest.fixture(scope="module")
def setup(tiny_lm):
    tk = tiny_lm.tokenizer
    rows = [torch.tensor([tiny_lm.bos_token_id] + list(tk.encode(t, add_special_tokens=False))[:20]) for t in TEXTS]
    length = max(len(r) for r in rows)
    tok = torch.zeros(len(rows), length, dtype=torch.long)
    read = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        tok[i, : len(r)] = r
        read[i, 1: len(r)] = True
    resid = tiny_lm.resid_at_hook(tok).float()
    ctx = HookContexts.from_padded(resid, read, torch.arange(len(rows)), len(rows))
    sae = make_sae(d_in=tiny_lm.d_model, d_sae=32, seed=3)
    return tok, ctx, sae, resid, read


def _pool(y, read):
    return torch.stack([y[i][read[i]].mean(0) for i in range(len(read))])


def test_probe_layer_residuals_equal_the_models_own_forward(tiny_lm, setup):
    tok, ctx, _, resid, read = setup
    with torch.no_grad():
        direct = tiny_lm.tl(tok, stop_at_layer=4).float()          # blocks 0..3 -> blocks.3.hook_resid_post
    assert torch.allclose(pooled_probe_resid(tiny_lm, ctx, 3), _pool(direct, read), atol=1e-4)
    # selecting documents keeps their contexts (renumbered in the order asked)
    sub = ctx.select_docs(torch.tensor([2, 0]))
    assert torch.allclose(pooled_probe_resid(tiny_lm, sub, 3), _pool(direct, read)[[2, 0]], atol=1e-4)
    both = pooled_at_layers(tiny_lm, ctx, [2, 3])
    assert torch.allclose(both[2], _pool(resid, read), atol=1e-5) and torch.allclose(both[3], _pool(direct, read), atol=1e-4)


def test_ablating_no_feature_with_the_error_term_kept_is_the_identity(tiny_lm, setup):
    _, ctx, sae, resid, read = setup
    assert sae_ablation(sae, []) is None
    clean = pooled_probe_resid(tiny_lm, ctx, 3)

    def reconstruct_plus_error(resid, read):                       # x_hat(f) + (x - x_hat(f)), nothing zeroed
        out = resid.clone()
        x = resid[read]
        with torch.no_grad():
            x_hat = sae.decode(sae.encode(x))
        out[read] = x_hat + (x - x_hat)
        return out

    assert torch.allclose(pooled_probe_resid(tiny_lm, ctx, 3, reconstruct_plus_error), clean, atol=1e-4)


def test_ablation_propagated_through_later_blocks_differs_from_ablating_at_the_probe_layer(tiny_lm, setup):
    _, ctx, sae, resid, read = setup
    x = resid[read]
    f = sae.encode(x).detach()
    features = torch.argsort(f.mean(0), descending=True)[:4].tolist()
    assert f[:, features].sum() > 0
    propagated = pooled_probe_resid(tiny_lm, ctx, 3, sae_ablation(sae, features))
    clean = pooled_probe_resid(tiny_lm, ctx, 3)
    # the same decoder contributions subtracted at the probe layer instead (no block in between)
    delta = torch.zeros_like(resid)
    delta[read] = f[:, features] @ sae.W_dec.detach()[features]
    at_probe_layer = clean - _pool(delta, read)
    assert not torch.allclose(propagated, clean, atol=1e-3)
    assert not torch.allclose(propagated, at_probe_layer, atol=1e-3)
    # at the hook (probe_layer == hook) the two coincide: no block runs
    at_hook = pooled_probe_resid(tiny_lm, ctx, 2, sae_ablation(sae, features))
    assert torch.allclose(at_hook, _pool(resid - delta, read), atol=1e-5)


def test_attribution_through_the_blocks(tiny_lm, setup):
    _, ctx, sae, resid, read = setup
    gen = torch.Generator().manual_seed(0)
    probe = LinearProbe(torch.randn(tiny_lm.d_model, generator=gen, dtype=torch.float64), 0.1)
    labels = np.array([1, 0, 1, 0])
    # at the hook it equals the exact linear attribution of attribution.py
    grads = hook_gradients(tiny_lm, ctx, 2, probe, 2 * labels - 1)
    x = resid[read]
    pooled_f = torch.stack([sae.encode(resid[i][read[i]]).mean(0) for i in range(ctx.n_docs)]).detach()
    expected = shift_scores(pooled_f, sae.W_dec.detach(), probe, labels)
    assert torch.allclose(shift_scores_through(sae, ctx, grads), expected, rtol=1e-4, atol=1e-6)
    # through block 3: the gradient is the autograd gradient of the pooled probe-layer logit
    grads3 = hook_gradients(tiny_lm, ctx, 3, probe, 2 * labels - 1)
    assert grads3.shape == x.shape and not torch.allclose(grads3, grads, atol=1e-6)
    # first order: ablating one feature changes the signed mean logit by about -its score
    scores = shift_scores_through(sae, ctx, grads3)
    top = int(torch.argmax(scores.abs()))
    sign = torch.as_tensor(2 * labels - 1, dtype=torch.float64)
    clean = (probe.logits(pooled_probe_resid(tiny_lm, ctx, 3)) * sign).mean()
    ablated = (probe.logits(pooled_probe_resid(tiny_lm, ctx, 3, sae_ablation(sae, [top]))) * sign).mean()
    # a whole feature removed through a block of a random LM is far from infinitesimal: the ratio
    # was 0.49 on an Intel AMX host (rel=0.5 failed there), nearer 1 on AMD; sign and size must hold
    ratio = float(clean - ablated) / float(scores[top])
    assert 0.25 < ratio < 4.0, ratio


def test_the_selection_rule_picks_the_highest_original_gender_accuracy():
    assert pick_probe_candidate([[0.50, 0.52], [0.90, 0.80], [0.84, 0.84]]) == 1     # mean 0.85 > 0.84
    assert pick_probe_candidate([[0.7], [0.7], [0.6]]) == 0                          # ties: the earlier candidate
    record = selection_record([{"probe_layer": 16}, {"probe_layer": 17}], [[0.6, 0.62], [0.55, 0.57]], [0, 1])
    assert record["picked"] == {"probe_layer": 16} and record["candidates"][1]["gender_acc_mean"] == pytest.approx(0.56)
    assert set(record["candidates"][0]["gender_acc_per_seed"]) == {"0", "1"} and "before any ablation" in record["rule"]
    with pytest.raises(ValueError):
        pick_probe_candidate([[0.5], []])


def test_wilson_interval():
    lo, hi = wilson_interval(87, 100)
    assert lo < 0.87 < hi and lo == pytest.approx(0.7907, abs=1e-3) and hi == pytest.approx(0.9216, abs=1e-3)
    assert wilson_interval(0, 0) is None and wilson_interval(10, 10)[1] == 1.0
