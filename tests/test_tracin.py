"""SAE-TracIn: the batched closed-form scores equal explicit per-document autograd scores."""

from __future__ import annotations


import pytest
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.tracin import PARAM_NAMES, TracInConfig, seed_gradient, tracin_scores

D_IN, D_SAE, LAM = 6, 10, 0.7
DOC_LENGTHS = [1, 3, 7, 12, 5, 2]  # doc 0 is a single token
ZERO_DOC = len(DOC_LENGTHS)  # appended: every token has all-zero feature activations


def toy_sae(dtype="float64", apply_b_dec_to_input=True, seed=0):
    """Random weights, non-unit decoder rows and non-zero biases, so ReLU masks are mixed."""
    gen = torch.Generator().manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, dtype=dtype, apply_b_dec_to_input=apply_b_dec_to_input))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=gen))
        sae.W_enc[0] = torch.rand(D_SAE, generator=gen) + 0.5  # lets us build an all-zero doc
        sae.b_enc.copy_(torch.randn(D_SAE, generator=gen))
        sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=gen) * (0.5 + torch.rand(D_SAE, 1, generator=gen)))
        sae.b_dec.copy_(torch.randn(D_IN, generator=gen))
    return sae


def toy_data(sae, seed=1):
    """Seed tokens, candidate tokens of docs of varying length, and their doc_index."""
    gen = torch.Generator().manual_seed(seed)
    dtype = sae.W_enc.dtype
    seed_acts = torch.randn(9, D_IN, generator=gen, dtype=dtype) * 2 + sae.b_dec.detach()
    docs = [torch.randn(n, D_IN, generator=gen, dtype=dtype) * 2 + sae.b_dec.detach() for n in DOC_LENGTHS]
    # u = x - b_dec far along -e_0: every pre-activation is negative (W_enc[0] > 0.5)
    zero = sae.b_dec.detach() + 0.1 * torch.randn(4, D_IN, generator=gen, dtype=dtype)
    zero[:, 0] -= 100.0 if sae.cfg.apply_b_dec_to_input else 100.0 - sae.b_dec[0].item()
    docs.append(zero)
    doc_index = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)])
    return seed_acts, docs, torch.cat(docs), doc_index


def reference_grad(sae, x, weighting, params):
    """Gradient of the mean SAE loss over x by plain autograd through SAELens' own forward."""
    sae.zero_grad(set_to_none=True)
    f = sae.encode(x)
    weighted = f * sae.W_dec.norm(dim=1) if weighting == "decoder_norm" else f
    loss = ((sae.decode(f) - x) ** 2).sum(-1).mean() + LAM * weighted.norm(p=1, dim=-1).mean()
    loss.backward()
    return torch.cat([getattr(sae, p).grad.flatten() for p in params])


def reference_scores(sae, seed_acts, docs, weighting, params):
    g = reference_grad(sae, seed_acts, weighting, params)
    return torch.stack([reference_grad(sae, d, weighting, params) @ g for d in docs])


def assert_rel_close(fast, ref, rel):
    scale = ref.abs().max()
    assert scale > 0
    torch.testing.assert_close(fast.to(ref), ref, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("weighting", ["none", "decoder_norm"])
@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
def test_scores_match_per_document_autograd(weighting, apply_b_dec_to_input):
    sae = toy_sae(apply_b_dec_to_input=apply_b_dec_to_input)
    seed_acts, docs, acts, doc_index = toy_data(sae)
    f = sae.encode(acts).detach()
    assert 0.2 < (f > 0).double().mean() < 0.8, "toy data should give mixed ReLU masks"
    assert (f[doc_index == ZERO_DOC] == 0).all() and (f[doc_index != ZERO_DOC] > 0).any(dim=1).all()

    ref = reference_scores(sae, seed_acts, docs, weighting, PARAM_NAMES)
    # batch_tokens=4 splits documents across batches; 4096 holds everything in one batch
    for batch_tokens in (4, 4096):
        fast = tracin_scores(sae, seed_acts, acts, doc_index, len(docs), TracInConfig(LAM, weighting, batch_tokens=batch_tokens))
        assert fast.shape == (len(docs),) and fast.dtype == torch.float64
        assert_rel_close(fast, ref, 1e-5)
    assert ref[ZERO_DOC] != 0  # b_dec still gets a gradient from the reconstruction error


@pytest.mark.parametrize("params", [("W_enc",), ("b_enc",), ("W_dec",), ("b_dec",), ("W_dec", "b_enc"), ("b_dec", "W_enc")])
def test_parameter_subsets(params):
    sae = toy_sae()
    seed_acts, docs, acts, doc_index = toy_data(sae)
    ref = reference_scores(sae, seed_acts, docs, "decoder_norm", params)
    fast = tracin_scores(sae, seed_acts, acts, doc_index, len(docs), TracInConfig(LAM, "decoder_norm", params=params, batch_tokens=5))
    assert_rel_close(fast, ref, 1e-5)


def test_float32_sae_matches_float64_reference():
    sae64 = toy_sae()
    sae32 = toy_sae(dtype="float32")
    seed_acts, docs, acts, doc_index = toy_data(sae64)
    ref = reference_scores(sae64, seed_acts, docs, "decoder_norm", PARAM_NAMES)
    fast = tracin_scores(sae32, seed_acts.float(), acts.float(), doc_index, len(docs), TracInConfig(LAM))
    assert_rel_close(fast, ref, 1e-4)


def test_seed_gradient_matches_autograd_and_can_be_reused():
    sae = toy_sae()
    seed_acts, docs, acts, doc_index = toy_data(sae)
    cfg = TracInConfig(l1_coefficient=LAM, params=("W_enc", "b_dec"), batch_tokens=4)
    g = seed_gradient(sae, seed_acts, cfg)
    assert set(g) == {"W_enc", "b_dec"} and g["W_enc"].shape == (D_IN, D_SAE)
    ref = reference_grad(sae, seed_acts, "decoder_norm", cfg.params)
    torch.testing.assert_close(torch.cat([g["W_enc"].flatten(), g["b_dec"]]), ref)
    reused = tracin_scores(sae, None, acts, doc_index, len(docs), cfg, seed_grad=g)
    assert_rel_close(reused, tracin_scores(sae, seed_acts, acts, doc_index, len(docs), cfg), 1e-12)


def test_doc_equal_to_seed_scores_squared_gradient_norm():
    """A document made of exactly the seed tokens has score ||g||^2 (mean, not sum, per doc)."""
    sae = toy_sae()
    seed_acts, docs, acts, doc_index = toy_data(sae)
    g = seed_gradient(sae, seed_acts, TracInConfig(LAM))
    scores = tracin_scores(sae, seed_acts, seed_acts, torch.zeros(len(seed_acts), dtype=torch.long), 1, TracInConfig(LAM))
    assert scores.item() == pytest.approx(sum(float((t * t).sum()) for t in g.values()), rel=1e-10)


# ---------------------------------------------------------------------------- errors
def test_clear_errors_for_bad_inputs():
    sae = toy_sae()
    seed_acts, docs, acts, doc_index = toy_data(sae)
    n = len(docs)
    with pytest.raises(ValueError, match="d_in=7 but the SAE expects d_in=6"):
        tracin_scores(sae, seed_acts, torch.zeros(len(acts), 7, dtype=acts.dtype), doc_index, n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="different model or hook layer"):
        tracin_scores(sae, torch.zeros(3, 7, dtype=acts.dtype), acts, doc_index, n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="seed activations are empty"):
        tracin_scores(sae, seed_acts[:0], acts, doc_index, n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="outside 0..n_docs-1"):
        tracin_scores(sae, seed_acts, acts, doc_index, n - 1, TracInConfig(LAM))
    bad = doc_index.clone()
    bad[0] = -1
    with pytest.raises(ValueError, match="outside 0..n_docs-1"):
        tracin_scores(sae, seed_acts, acts, bad, n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="have no tokens"):
        tracin_scores(sae, seed_acts, acts, doc_index, n + 2, TracInConfig(LAM))
    with pytest.raises(ValueError, match="entries for"):
        tracin_scores(sae, seed_acts, acts, doc_index[:-1], n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="integer"):
        tracin_scores(sae, seed_acts, acts, doc_index.double(), n, TracInConfig(LAM))
    with pytest.raises(ValueError, match="seed_acts or a precomputed seed_grad"):
        tracin_scores(sae, None, acts, doc_index, n, TracInConfig(LAM))
    for where in ("cand", "seed"):
        x = (acts if where == "cand" else seed_acts).clone()
        x[2, 3] = float("nan") if where == "cand" else float("inf")
        args = (x, acts) if where == "seed" else (seed_acts, x)
        with pytest.raises(FloatingPointError, match="NaN/inf"):
            tracin_scores(sae, *args, doc_index, n, TracInConfig(LAM))


def test_config_validation_and_unsupported_saes():
    for bad in (
        dict(l1_coefficient=-1.0),
        dict(l1_coefficient=float("nan")),
        dict(l1_coefficient=1.0, l1_weighting="l2"),
        dict(l1_coefficient=1.0, params=()),
        dict(l1_coefficient=1.0, params=("W_enc", "W_foo")),
        dict(l1_coefficient=1.0, params=("W_enc", "W_enc")),
        dict(l1_coefficient=1.0, batch_tokens=0),
    ):
        with pytest.raises(ValueError, match="tracin"):
            TracInConfig(**bad)
    assert TracInConfig(1.0, params=["b_dec"]).params == ("b_dec",)
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="expected_average_only_in"))
    with pytest.raises(ValueError, match="fold the norm scaling"):
        seed_gradient(sae, torch.randn(3, D_IN), TracInConfig(LAM))
