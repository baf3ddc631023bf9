"""Finetuning the GSAE into SSAEs: the stacked lambda grid equals separate runs, the
parametrisation keeps the GSAE's function, decoder modes, schedule and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sae_lens import SAE
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.sae.finetune import FinetuneConfig, SAEStack, batches, finetune, stack_losses, validation_objective
from ssae_utils.sae.gsae import save_sae
from ssae_utils.sae.term import TiltConfig, sae_objective

D_IN, D_SAE, SCALE = 16, 32, 0.05


def toy_gsae(seed=0) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1) + 0.5)      # decoder rows of varied norm, like a real GSAE
        sae.b_dec.copy_(torch.randn(D_IN))
        sae.b_enc.copy_(-0.1 * torch.rand(D_SAE))
    return sae.eval()


def toy_acts(n=2048, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = (torch.rand(n, 8, generator=g) < 0.3) * torch.rand(n, 8, generator=g)
    return (codes @ torch.randn(8, D_IN, generator=g) * 3 + 0.1 * torch.randn(n, D_IN, generator=g)) / SCALE


def small_cfg(**kw) -> FinetuneConfig:
    base = dict(l1_coefficients=(0.5, 2.0), steps=30, batch_size=128, lr=3e-3, lr_decay_steps=10,
                shuffle_buffer_batches=2, log_every=10)
    return FinetuneConfig(**{**base, **kw})


def test_stack_keeps_the_gsae_function_and_exports_it_back():
    gsae, x = toy_gsae(), toy_acts(64)
    stack = SAEStack.from_sae(gsae, 2, SCALE)
    assert torch.allclose(stack.W_dec.norm(dim=-1), torch.ones(2, D_SAE), atol=1e-5)
    _, x_hat = stack(x * SCALE)
    with torch.no_grad():
        expected = gsae.decode(gsae.encode(x))
    torch.testing.assert_close(x_hat[1] / SCALE, expected, rtol=1e-4, atol=1e-3)
    exported = stack.to_saelens(0, SCALE)
    with torch.no_grad():
        torch.testing.assert_close(exported.decode(exported.encode(x)), expected, rtol=1e-4, atol=1e-3)
        # features are rescaled by the decoder norms (unit rows), so the weighted L1 is unchanged
        f_gsae, f_new = gsae.encode(x), exported.encode(x)
        torch.testing.assert_close((f_new * exported.W_dec.norm(dim=1)).sum(-1), (f_gsae * gsae.W_dec.norm(dim=1)).sum(-1), rtol=1e-4, atol=1e-3)


def test_a_stacked_grid_equals_separate_runs():
    gsae, x = toy_gsae(), toy_acts()
    together = finetune(gsae, x, small_cfg(), SCALE, progress=False)
    for i, lam in enumerate((0.5, 2.0)):
        alone = finetune(gsae, x, small_cfg(l1_coefficients=(lam,)), SCALE, progress=False)
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            torch.testing.assert_close(getattr(together.stack, name)[i], getattr(alone.stack, name)[0], rtol=1e-4, atol=1e-5)


def test_training_lowers_the_loss_and_larger_lambda_gives_lower_l0():
    result = finetune(toy_gsae(), toy_acts(), small_cfg(steps=80, l1_coefficients=(0.1, 5.0)), SCALE, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["objective"][0] < first["objective"][0]
    assert last["l0"][1] < last["l0"][0]
    assert last["step"] == 79 and last["lr"] == pytest.approx(3e-3 / 10)


def test_decoder_modes():
    x = toy_acts()
    unit = finetune(toy_gsae(), x, small_cfg(decoder="unit_norm"), SCALE, progress=False)
    assert torch.allclose(unit.stack.W_dec.norm(dim=-1), torch.ones(2, D_SAE), atol=1e-5)
    free = finetune(toy_gsae(), x, small_cfg(decoder="weighted_l1"), SCALE, progress=False)
    assert (free.stack.W_dec.norm(dim=-1) - 1).abs().max() > 1e-3


def test_tilt_zero_is_erm_and_a_large_tilt_trains_differently():
    x = toy_acts()
    erm = finetune(toy_gsae(), x, small_cfg(), SCALE, progress=False)
    t0 = finetune(toy_gsae(), x, small_cfg(tilt=TiltConfig(t=0.0)), SCALE, progress=False)
    assert torch.equal(erm.stack.W_enc, t0.stack.W_enc)
    tilted = finetune(toy_gsae(), x, small_cfg(tilt=TiltConfig(t=1e9)), SCALE, progress=False)
    assert torch.isfinite(tilted.stack.W_enc).all()
    assert not torch.allclose(tilted.stack.W_enc, erm.stack.W_enc)
    seqs = torch.arange(x.shape[0]) // 16
    by_seq = finetune(toy_gsae(), x, small_cfg(tilt=TiltConfig(t=500.0, over="sequences", normalize="loss_scale")), SCALE,
                      sequence_ids=seqs, progress=False)
    assert torch.isfinite(by_seq.stack.W_enc).all()


def test_saved_ssae_reloads_with_saelens(tmp_path):
    gsae, x = toy_gsae(), toy_acts(256)
    result = finetune(gsae, toy_acts(), small_cfg(steps=5), SCALE, progress=False)
    sae = result.saes(hook_name="blocks.0.hook_resid_post")[1]
    save_sae(sae, tmp_path / "ssae", {"lambda": 2.0})
    loaded = SAE.load_from_disk(str(tmp_path / "ssae"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(loaded.encode(x)), sae.decode(sae.encode(x)))


def test_lr_schedule_and_batches():
    cfg = FinetuneConfig(steps=10, lr=1.0, lr_decay_steps=4, batch_size=4, shuffle_buffer_batches=2)
    assert [cfg.lr_at(s) for s in range(10)] == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    assert FinetuneConfig(steps=3, lr=1.0, lr_decay_steps=0).lr_at(2) == 1.0
    warm = FinetuneConfig(steps=10, lr=1.0, lr_decay_steps=4, lr_warm_up_steps=4)
    assert [warm.lr_at(s) for s in range(10)] == [0.25, 0.5, 0.75, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    # no warm-up: the training key earlier releases wrote (their cached SSAEs stay valid)
    assert "lr_warm_up_steps" not in FinetuneConfig(steps=3).training_key()
    assert warm.training_key()["lr_warm_up_steps"] == 4
    with pytest.raises(ValueError, match="lr_warm_up_steps"):
        FinetuneConfig(steps=3, lr_warm_up_steps=3)
    stream = batches(16, cfg, torch.Generator().manual_seed(0))
    first_pass = torch.cat([next(stream) for _ in range(4)])
    assert sorted(first_pass.tolist()) == list(range(16))
    assert set(first_pass[:8].tolist()) == set(range(8))          # shuffled only within a buffer
    full = batches(16, FinetuneConfig(batch_size=4, shuffle_buffer_batches=None), torch.Generator().manual_seed(0))
    assert sorted(torch.cat([next(full) for _ in range(4)]).tolist()) == list(range(16))
    # fewer tokens than one batch (seed-only at many passes): batches span consecutive passes,
    # every pass complete, a token at most twice per batch
    small = batches(5, FinetuneConfig(batch_size=8, shuffle_buffer_batches=None), torch.Generator().manual_seed(0))
    drawn = torch.cat([next(small) for _ in range(5)])
    assert len(drawn) == 40 and all(sorted(drawn[i:i + 5].tolist()) == list(range(5)) for i in range(0, 40, 5))


def test_a_selection_smaller_than_one_batch_trains():
    out = finetune(toy_gsae(), toy_acts(64), small_cfg(), SCALE, progress=False)
    assert out.history and all(math.isfinite(h["loss"]) for h in out.history if "loss" in h)


def test_bad_input_is_refused_with_a_clear_message():
    gsae = toy_gsae()
    with pytest.raises(ValueError, match="d_in=8 but the GSAE expects d_in=16"):
        finetune(gsae, torch.randn(512, 8), small_cfg(), SCALE, progress=False)
    with pytest.raises(ValueError, match="no training tokens"):
        finetune(gsae, toy_acts(64)[:0], small_cfg(), SCALE, progress=False)
    bad = toy_acts()
    bad[5] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN"):
        finetune(gsae, bad, small_cfg(), SCALE, progress=False)
    huge = toy_acts() * 1e25     # finite inputs whose squared error overflows float32
    with pytest.raises(FloatingPointError, match=r"step 0 for lambda \[0.5, 2.0\] with tilt t=0"):
        finetune(gsae, huge, small_cfg(), SCALE, progress=False)
    with pytest.raises(ValueError, match="sequence_ids"):
        finetune(gsae, toy_acts(), small_cfg(tilt=TiltConfig(t=5.0, over="sequences")), SCALE, progress=False)
    for bad_cfg in ({"l1_coefficients": ()}, {"decoder": "tied"}, {"steps": 0}, {"shuffle_buffer_batches": 0}):
        with pytest.raises(ValueError):
            FinetuneConfig(**bad_cfg)


def test_checkpoints_hold_the_weights_of_a_shorter_run_and_do_not_change_training():
    gsae, x = toy_gsae(), toy_acts()
    cfg = small_cfg(checkpoint_steps=(12, 5))
    assert cfg.kept_steps == (5, 12, 30) and "checkpoint_steps" not in cfg.training_key()
    assert small_cfg().training_key() == cfg.training_key()
    kept = finetune(gsae, x, cfg, SCALE, progress=False)
    plain = finetune(gsae, x, small_cfg(), SCALE, progress=False)
    assert torch.equal(kept.stack.W_enc, plain.stack.W_enc)
    # the same schedule cut short: lr_at depends on the total steps, so compare with a run of
    # 30 steps stopped by hand after 12, i.e. the checkpoint must differ from the final weights
    # and equal what the loop held at that step
    assert not torch.equal(kept.checkpoints[12].W_enc, kept.stack.W_enc)
    assert set(kept.checkpoints) == {5, 12}
    early = kept.saes(step=5)
    assert len(early) == 2 and not torch.equal(early[0].W_enc, kept.saes()[0].W_enc)
    with pytest.raises(ValueError, match="checkpoint_steps"):
        small_cfg(checkpoint_steps=(30,))


def test_validation_objective_of_a_saved_ssae_equals_the_training_objective():
    gsae, x = toy_gsae(), toy_acts()
    held_out = toy_acts(300, seed=9)
    for decoder, tilt in [("unit_norm", TiltConfig()), ("weighted_l1", TiltConfig()), ("unit_norm", TiltConfig(t=5.0, normalize="loss_scale"))]:
        result = finetune(gsae, x, small_cfg(decoder=decoder, tilt=tilt), SCALE, progress=False)
        lambdas = torch.tensor([0.5, 2.0])
        with torch.no_grad():
            mse, penalty, _ = stack_losses(result.stack, held_out * SCALE, lambdas, decoder)
            expected = sae_objective(mse, penalty, tilt, None)
        for i, sae in enumerate(result.saes()):
            got = validation_objective(sae, held_out, float(lambdas[i]), SCALE, tilt)
            assert got == pytest.approx(float(expected[i]), rel=1e-4), (decoder, tilt)


def test_training_from_on_disk_activations_equals_training_in_memory(tmp_path):
    from ssae_utils.activations import ShardedActivations

    x = toy_acts()
    halves = [x[:1000].numpy(), x[1000:].numpy()]
    paths = []
    for i, half in enumerate(halves):
        np_path = tmp_path / f"shard{i}.npy"
        np.save(np_path, half)
        paths.append(np.load(np_path, mmap_mode="r"))
    n = x.shape[0]
    on_disk = ShardedActivations(paths, (torch.arange(n) >= 1000).int(), torch.where(torch.arange(n) >= 1000, torch.arange(n) - 1000, torch.arange(n)),
                                 torch.arange(n) // 16)
    cfg = small_cfg(shuffle_buffer_batches=2)
    a = finetune(toy_gsae(), x, cfg, SCALE, progress=False)
    b = finetune(toy_gsae(), on_disk, cfg, SCALE, progress=False)
    torch.testing.assert_close(a.stack.W_enc, b.stack.W_enc)
    bad = x.clone()
    bad[1500] = float("nan")
    np.save(tmp_path / "bad.npy", bad[1000:].numpy())
    broken = ShardedActivations([paths[0], np.load(tmp_path / "bad.npy", mmap_mode="r")], on_disk.shard, on_disk.row, on_disk.doc_index)
    with pytest.raises(FloatingPointError, match="recompute the activation cache"):
        finetune(toy_gsae(), broken, small_cfg(steps=60, shuffle_buffer_batches=None), SCALE, progress=False)


def test_bf16_matmuls_train_close_to_float32_and_key_the_cache_only_when_used():
    gsae, x = toy_gsae(), toy_acts()
    start = SAEStack.from_sae(gsae, 2, SCALE)
    fp32 = finetune(gsae, x, small_cfg(steps=60), SCALE, progress=False)
    bf16 = finetune(gsae, x, small_cfg(steps=60, compute_dtype="bfloat16"), SCALE, progress=False)
    assert "bf16" not in str(fp32.config) and bf16.stack.W_enc.dtype == torch.float32   # the weights stay float32
    moved = (fp32.stack.W_enc - start.W_enc).norm()
    apart = (bf16.stack.W_enc - fp32.stack.W_enc).norm()
    assert moved > 0 and apart < 0.25 * moved                  # the same training, up to rounding
    assert bf16.history[-1]["objective"][0] == pytest.approx(fp32.history[-1]["objective"][0], rel=0.05)
    # float32 keeps the key earlier releases wrote; bf16 is part of it
    assert "compute_dtype" not in small_cfg().training_key()
    assert small_cfg(compute_dtype="bfloat16").training_key()["compute_dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        small_cfg(compute_dtype="auto")


def test_bf16_losses_and_the_tilt_are_computed_in_float32():
    stack = SAEStack.from_sae(toy_gsae(), 2, SCALE)
    mse, penalty, f = stack_losses(stack, toy_acts(64) * SCALE, torch.tensor([0.5, 2.0]), "unit_norm", "bfloat16")
    assert mse.dtype == penalty.dtype == f.dtype == torch.float32
    exact, _, _ = stack_losses(stack, toy_acts(64) * SCALE, torch.tensor([0.5, 2.0]), "unit_norm")
    torch.testing.assert_close(mse, exact, rtol=0.05, atol=1e-3)
    # a large tilt (logsumexp of the per-token loss) stays finite in bf16 training
    result = finetune(toy_gsae(), toy_acts(), small_cfg(steps=10, compute_dtype="bfloat16", tilt=TiltConfig(t=1e9)),
                      SCALE, progress=False)
    assert all(math.isfinite(v) for v in result.history[-1]["objective"])
