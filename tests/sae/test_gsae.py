from __future__ import annotations

import json

import pytest
import torch
from sae_lens import SAE

from ssae_utils.sae.config import GSAEConfig
from ssae_utils.sae.evaluation import reconstruction_stats
from ssae_utils.sae.gsae import fold_norm_scaling, load_sae, read_training_info, shuffled_batches, train_gsae


def sparse_data(n=6000, d=16, k=48, seed=0):
    """Activations built from k sparse ground-truth directions, scaled like a residual stream."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(k, d, generator=gen), dim=-1)
    codes = (torch.rand(n, k, generator=gen) < 0.06) * torch.rand(n, k, generator=gen) * 3
    return 50.0 * (codes @ dirs)


def small_cfg(**kw):
    base = dict(d_sae=64, l1_coefficient=0.3, lr=3e-3, batch_size=256, train_tokens=30_000, pool_tokens=6000, eval_tokens=512, lr_warm_up_steps=5)
    base.update(kw)
    return GSAEConfig(**base)


def test_shuffled_batches_cover_every_row_each_pass():
    acts = torch.arange(12.0).unsqueeze(1)
    it = shuffled_batches(acts, batch_size=4, seed=0)
    first_pass = torch.cat([next(it) for _ in range(3)]).flatten().sort().values
    assert torch.equal(first_pass, torch.arange(12.0))
    with pytest.raises(ValueError, match="pool_tokens"):
        next(shuffled_batches(acts, batch_size=20, seed=0))


def test_trained_gsae_reconstructs_sparse_data_and_loads_with_sae_lens(tmp_path):
    acts = sparse_data()
    sae, info = train_gsae(acts, small_cfg(), hook_name="blocks.0.hook_resid_post", out_dir=tmp_path / "gsae")
    # SAELens format on disk, loadable by SAELens itself
    assert (tmp_path / "gsae" / "cfg.json").exists() and (tmp_path / "gsae" / "sae_weights.safetensors").exists()
    reloaded = SAE.load_from_disk(str(tmp_path / "gsae"))
    cfg = json.loads((tmp_path / "gsae" / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "none"  # the scaling factor was folded in
    x = acts[:100]
    torch.testing.assert_close(reloaded(x), sae(x))
    stats = reconstruction_stats(sae, sparse_data(seed=1))
    assert stats.fvu < 0.35, stats
    assert 0 < stats.l0 < 40
    assert read_training_info(tmp_path / "gsae")["norm_scaling_factor"] == pytest.approx((16**0.5) / acts[~torch.zeros(len(acts), dtype=torch.bool)].norm(dim=-1).mean().item(), rel=1e-4)
    assert info["steps"] == 30_000 // 256


def test_outlier_tokens_are_left_out_of_training(tmp_path):
    acts = sparse_data(n=3000)
    acts[:5] *= 1000.0
    _, info = train_gsae(acts, small_cfg(train_tokens=2560), hook_name="h", out_dir=tmp_path / "g")
    assert info["outliers"]["n_outliers"] == 5
    assert info["unique_training_tokens"] == 3000 - 5
    assert info["outliers"]["outlier_variance_share"] > 0.9


def test_bad_training_inputs(tmp_path):
    with pytest.raises(ValueError, match="n_tokens, d_in"):
        train_gsae(torch.zeros(3, 4, 5), small_cfg(), "h", tmp_path / "a")
    bad = sparse_data(n=600)
    bad[3, 2] = float("nan")
    with pytest.raises(FloatingPointError):
        train_gsae(bad, small_cfg(), "h", tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="notebook 00"):
        load_sae(tmp_path / "nothing")
    with pytest.raises(ValueError, match="pretrained_release"):
        GSAEConfig(source="pretrained")


def test_fold_norm_scaling_matches_normalised_forward(tmp_path):
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=32, normalize_activations="none"))
    torch.nn.init.normal_(sae.b_enc)
    acts = sparse_data(n=200)
    factor = (16**0.5) / acts.norm(dim=-1).mean()
    expected = sae(acts * factor) / factor
    sae.cfg.normalize_activations = "expected_average_only_in"
    got_factor = fold_norm_scaling(sae, acts)
    assert got_factor == pytest.approx(float(factor), rel=1e-5)
    torch.testing.assert_close(sae(acts), expected, rtol=1e-4, atol=1e-3)
    assert fold_norm_scaling(sae, acts) is None  # already folded


def test_a_trained_gsae_cache_key_ignores_the_pretrained_only_knobs_and_stays_stable():
    import dataclasses

    from ssae_utils.sae.config import GSAEConfig
    from ssae_utils.sae.gsae import gsae_cache_key

    cfg = dataclasses.replace(GSAEConfig.embedded(), train_dtype="float32")
    args = ("data", "blocks.12.hook_resid_post", 640, "cpu")
    key = gsae_cache_key(cfg, *args)
    other = dataclasses.replace(cfg, calibration_lambdas=(0.5, 1.0), calibration_steps=7, calibration_lr=1e-3)
    assert gsae_cache_key(other, *args) == key
    assert gsae_cache_key(dataclasses.replace(cfg, l1_coefficient=2.0), *args) != key
    # pinned: a change here retrains every user's GSAE and, through its folder, every SSAE
    # (the embedded preset's float32 key; its train_dtype "auto" gives this key where it resolves to float32)
    assert key == "cc08fb1b8ed32940"


def test_train_dtype_keys_the_gsae_by_what_ran(tmp_path, monkeypatch):
    import ssae_utils.device as device
    from ssae_utils.sae.gsae import gsae_cache_key

    args = ("data", "blocks.0.hook_resid_post", 16, "cpu")
    old = gsae_cache_key(small_cfg(), *args)
    assert gsae_cache_key(small_cfg(train_dtype="float32"), *args) == old        # earlier GSAEs keep their key
    assert gsae_cache_key(small_cfg(train_dtype="bfloat16"), *args) != old
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert gsae_cache_key(small_cfg(train_dtype="auto"), *args) == old           # auto -> float32 on this CPU
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert gsae_cache_key(small_cfg(train_dtype="auto"), *args) == gsae_cache_key(small_cfg(train_dtype="bfloat16"), *args)
    acts = sparse_data()
    sae, info = train_gsae(acts, small_cfg(train_dtype="bfloat16"), "h", tmp_path / "bf16")
    ref, _ = train_gsae(acts, small_cfg(), "h", tmp_path / "fp32")
    assert info["train_dtype"] == "bfloat16" and sae.W_enc.dtype == torch.float32
    fvu, ref_fvu = reconstruction_stats(sae, sparse_data(seed=1)).fvu, reconstruction_stats(ref, sparse_data(seed=1)).fvu
    assert fvu == pytest.approx(ref_fvu, abs=0.03)
