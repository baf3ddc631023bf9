"""SAEHandle: the one SAE forward pass every stage uses equals SAELens' own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from sae_lens import SAE
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.sae.evaluation import feature_firing_rates, reconstruction_stats, sae_splice
from ssae_utils.sae.finetune import SAEStack
from ssae_utils.sae.gsae import load_sae, save_sae
from ssae_utils.sae.handle import ARCHITECTURES, Architecture, SAEHandle, as_handle, register_architecture
from ssae_utils.tracin import TracInConfig, tracin_scores

D_IN, D_SAE = 8, 20


def random_sae(apply_b_dec_to_input: bool = True, dtype: str = "float32", seed: int = 0) -> StandardSAE:
    """Random weights, non-unit decoder rows and non-zero biases: mixed ReLU masks."""
    gen = torch.Generator().manual_seed(seed)
    cfg = StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=apply_b_dec_to_input, dtype=dtype)
    cfg.metadata.hook_name = "blocks.3.hook_resid_post"
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=gen))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=gen))
        sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=gen) * (0.5 + torch.rand(D_SAE, 1, generator=gen)))
        sae.b_dec.copy_(torch.randn(D_IN, generator=gen))
    return sae.eval()


def inputs(sae, n: int = 64, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, D_IN, generator=gen, dtype=sae.W_enc.dtype) * 2 + sae.b_dec.detach()


@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
def test_encode_decode_equal_saelens_forward(apply_b_dec_to_input):
    sae = random_sae(apply_b_dec_to_input)
    handle = SAEHandle.from_sae(sae)
    x = inputs(sae)
    with torch.no_grad():
        f_ref = sae.encode(x)
        ref = sae.decode(f_ref)
    assert 0.2 < (f_ref > 0).float().mean() < 0.8, "random SAE should give mixed ReLU masks"
    torch.testing.assert_close(handle.encode(x), f_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(handle.decode(f_ref), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(handle(x), ref, atol=1e-5, rtol=0)
    assert handle.b_dec_folded is (not apply_b_dec_to_input)
    assert handle.cfg.apply_b_dec_to_input is True  # the handle's weights with its cfg: the same SAE
    if apply_b_dec_to_input:
        # nothing to fold: the handle's forward is SAELens' op for op, bit for bit
        assert torch.equal(handle.encode(x), f_ref) and torch.equal(handle.decode(f_ref), ref)
        assert handle.W_enc.data_ptr() == sae.W_enc.data_ptr()  # views, not copies
    else:
        torch.testing.assert_close(handle.b_enc, (sae.b_enc + sae.b_dec @ sae.W_enc).detach())
        assert sae.cfg.apply_b_dec_to_input is False  # the source's cfg is left alone


def test_canonical_weights_and_description():
    sae = random_sae(dtype="float64")
    handle = as_handle(sae)
    assert as_handle(handle) is handle and SAEHandle.from_sae(handle) is handle
    w = handle.weights()
    assert list(w) == ["W_enc", "b_enc", "W_dec", "b_dec"]
    assert w["W_enc"].shape == (D_IN, D_SAE) and w["W_dec"].shape == (D_SAE, D_IN)
    assert w["b_enc"].shape == (D_SAE,) and w["b_dec"].shape == (D_IN,)
    assert not any(t.requires_grad for t in w.values())
    assert (handle.d_in, handle.d_sae) == (D_IN, D_SAE)
    assert handle.hook_name == "blocks.3.hook_resid_post" and handle.architecture == "standard"
    assert handle.dtype == torch.float64 and handle.device == torch.device("cpu")
    assert "d_sae=20" in repr(handle)


def test_error_term_identity():
    sae = random_sae(dtype="float64")
    handle = as_handle(sae)
    x = inputs(sae)
    x_hat, err = handle.reconstruct(x)
    torch.testing.assert_close(x_hat, handle.decode(handle.encode(x)), rtol=0, atol=0)
    torch.testing.assert_close(x_hat + err, x, rtol=0, atol=1e-12)
    assert err.abs().max() > 0.1  # a real error term, not a trivial identity


def test_decoder_directions_and_l1_weights():
    handle = as_handle(random_sae())
    norms = handle.W_dec.norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))
    assert torch.equal(handle.l1_weights(), norms) and torch.equal(handle.l1_weights("decoder_norm"), norms)
    assert torch.equal(handle.l1_weights("none"), torch.ones(D_SAE))
    assert handle.directions() is handle.W_dec
    unit = handle.directions(unit=True)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(D_SAE))
    torch.testing.assert_close(unit * norms[:, None], handle.W_dec)
    # f_i ||d_i|| and d_i / ||d_i|| describe the same reconstruction (the stack relies on it)
    f = handle.encode(inputs(handle))
    torch.testing.assert_close((f * norms) @ unit + handle.b_dec, handle.decode(f))
    with pytest.raises(ValueError, match="decoder_norm"):
        handle.l1_weights("l2")


@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
def test_save_and_load_round_trip(tmp_path, apply_b_dec_to_input):
    sae = random_sae(apply_b_dec_to_input)
    handle = as_handle(sae)
    save_sae(handle, tmp_path / "sae", {"note": "test"})
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, SAEHandle) and loaded.b_dec_folded is False  # saved in canonical form
    for name, t in handle.weights().items():
        assert torch.equal(getattr(loaded, name), t), name
    assert loaded.hook_name == handle.hook_name and (loaded.d_in, loaded.d_sae) == (D_IN, D_SAE)
    assert torch.equal(SAEHandle.load(tmp_path / "sae").W_dec, handle.W_dec)
    # SAELens reads the saved folder as the same function as the source SAE
    x = inputs(sae)
    with torch.no_grad():
        torch.testing.assert_close(SAE.load_from_disk(str(tmp_path / "sae"))(x), sae(x), atol=1e-5, rtol=0)
    with pytest.raises(FileNotFoundError, match="cfg.json missing"):
        load_sae(tmp_path / "nothing")


def test_select_keeps_exactly_those_features():
    sae = random_sae()
    handle = as_handle(sae)
    x = inputs(sae)
    full = handle.encode(x)
    # equal up to the matmul's summation order, which BLAS picks by matrix width
    torch.testing.assert_close(handle.select([7, 2, 11]).encode(x), full[:, [7, 2, 11]], atol=1e-6, rtol=1e-6)
    first = handle.select(slice(0, 5))
    assert first.d_sae == 5 and first.cfg.d_sae == 5 and handle.cfg.d_sae == D_SAE
    torch.testing.assert_close(first.encode(x), full[:, :5], atol=1e-6, rtol=1e-6)
    assert first.W_enc.is_contiguous()
    assert torch.equal(first.W_dec, handle.W_dec[:5]) and torch.equal(first.b_dec, handle.b_dec)


def test_normalised_inputs_are_refused():
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="expected_average_only_in"))
    with pytest.raises(ValueError, match="fold the norm scaling"):
        SAEHandle.from_sae(sae)
    with pytest.raises(ValueError, match="fold the norm scaling"):
        SAEStack.from_sae(sae, 2, 1.0)


# ----------------------------------------------------------------------------- registry
class _FakeCfg(StandardSAEConfig):
    @classmethod
    def architecture(cls) -> str:
        return "test_thresholded"


def _fake_sae(architecture_cfg=_FakeCfg):
    """A duck-typed SAE of a made-up architecture: ReLU with a per-feature threshold."""
    base = random_sae()
    cfg = architecture_cfg(d_in=D_IN, d_sae=D_SAE)
    return SimpleNamespace(cfg=cfg, W_enc=base.W_enc, b_enc=base.b_enc, W_dec=base.W_dec, b_dec=base.b_dec,
                           threshold=torch.linspace(0.0, 2.0, D_SAE)), base


def test_registering_an_architecture_is_one_call(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "test_thresholded", None)  # restored after the test
    register_architecture("test_thresholded", Architecture(
        activation=lambda pre, h: pre * (pre > h.extras["threshold"]), extra_params=("threshold",)))
    fake, base = _fake_sae()
    handle = as_handle(fake)
    assert handle.architecture == "test_thresholded" and set(handle.extras) == {"threshold"}
    x = inputs(base)
    with torch.no_grad():
        pre = (x - base.b_dec) @ base.W_enc + base.b_enc
    expected = pre * (pre > fake.threshold)
    assert torch.equal(handle.encode(x), expected)
    assert not torch.equal(expected, torch.relu(pre))  # the threshold matters on this data
    sub = handle.select([3, 15])
    assert torch.equal(sub.extras["threshold"], fake.threshold[[3, 15]])
    torch.testing.assert_close(sub.encode(x), expected[:, [3, 15]], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="registers no SAELens class"):
        handle.to_saelens()
    # stages whose algebra is ReLU-only refuse it instead of computing the wrong thing
    with pytest.raises(ValueError, match="'standard'"):
        tracin_scores(handle, x, x, torch.zeros(len(x), dtype=torch.long), 1, TracInConfig(1.0))
    with pytest.raises(ValueError, match="'standard'"):
        SAEStack.from_sae(handle, 1, 1.0)


def test_unknown_architecture_names_the_registered_ones():
    fake, _ = _fake_sae()
    with pytest.raises(ValueError, match=r"'test_thresholded' is not registered; registered: \[.*'standard'"):
        as_handle(fake)


# ----------------------------------------------------------------------------- the fold
def test_fold_chain_rule_gives_the_source_gradient():
    """Gradients through the handle's (folded) parameters map back to the SAELens SAE's."""
    sae = random_sae(apply_b_dec_to_input=False, dtype="float64")
    handle = as_handle(sae)
    x = inputs(sae)

    def loss(f, x_hat):
        return ((x_hat - x) ** 2).sum() + 0.3 * f.sum()

    f = sae.encode(x)
    loss(f, sae.decode(f)).backward()
    ref = {name: getattr(sae, name).grad for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    w = {name: t.clone().requires_grad_() for name, t in handle.weights().items()}
    f = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    loss(f, f @ w["W_dec"] + w["b_dec"]).backward()
    got = handle.to_source_grad({name: t.grad for name, t in w.items()})
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], msg=name)
    # and the Jacobian is its adjoint: <grad_handle, J d> = <grad_source, d>
    gen = torch.Generator().manual_seed(3)
    d = {name: torch.randn(t.shape, generator=gen, dtype=t.dtype) for name, t in ref.items()}
    pushed = handle.from_source_direction(d)
    lhs = sum(float((w[n].grad * pushed[n]).sum()) for n in d)
    assert lhs == pytest.approx(sum(float((ref[n] * d[n]).sum()) for n in d), rel=1e-10)


# ----------------------------------------------------------------------------- stages
def test_stages_accept_the_handle_and_agree_with_the_saelens_sae():
    sae = random_sae()
    handle = as_handle(sae)
    x = inputs(sae, 200)
    with torch.no_grad():
        assert reconstruction_stats(handle, x) == reconstruction_stats(sae, x)
        assert feature_firing_rates(handle, x) == feature_firing_rates(sae, x)
        resid = x.reshape(4, 50, D_IN)
        assert torch.equal(sae_splice(handle)(resid), sae_splice(sae)(resid))
    a, b = SAEStack.from_sae(handle, 2, 3.0), SAEStack.from_sae(sae, 2, 3.0)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    doc_index = torch.arange(len(x)) // 20
    assert torch.equal(tracin_scores(handle, x[:30], x, doc_index, 10, TracInConfig(0.5)), tracin_scores(sae, x[:30], x, doc_index, 10, TracInConfig(0.5)))


def test_stack_from_a_folded_sae_reconstructs_like_the_sae():
    """SAEStack used to refuse apply_b_dec_to_input=False; through the fold it trains it."""
    sae = random_sae(apply_b_dec_to_input=False)
    stack = SAEStack.from_sae(sae, 1, 2.0)
    x = inputs(sae)
    with torch.no_grad():
        _, x_hat = stack(x * 2.0)
        torch.testing.assert_close(x_hat[0] / 2.0, sae(x), atol=1e-4, rtol=1e-5)
