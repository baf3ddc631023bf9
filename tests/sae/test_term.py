"""TERM limits: t -> 0 is the mean, large t the max, gradients stay finite, one extreme
example takes over the gradient."""

from __future__ import annotations

import math

import pytest
import torch

from ssae_utils.sae.term import TiltConfig, per_sequence, sae_objective, tilted_mean


def test_t_zero_is_exactly_the_mean_and_small_t_tends_to_it():
    losses = torch.tensor([1.0, 2.0, 4.0, 9.0])
    assert tilted_mean(losses, 0.0) == losses.mean()
    for t in (1e-3, -1e-3):
        assert tilted_mean(losses.double(), t).item() == pytest.approx(losses.mean().item(), rel=1e-2)
    assert tilted_mean(losses.double(), 1e-7).item() == pytest.approx(4.0, abs=1e-5)


def test_large_t_gives_the_max_and_negative_t_the_min_in_float32():
    losses = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float32)
    big = tilted_mean(losses, 1e9)
    assert torch.isfinite(big) and big.item() == pytest.approx(9.0, abs=1e-6)
    assert tilted_mean(losses, 500.0).item() == pytest.approx(9.0 - math.log(4) / 500, abs=1e-5)
    assert tilted_mean(losses, -1e9).item() == pytest.approx(1.0, abs=1e-6)
    # monotone in t
    values = [tilted_mean(losses.double(), t).item() for t in (-5, -1, 0, 0.1, 1, 5)]
    assert values == sorted(values)


def test_gradients_are_finite_and_concentrate_on_the_worst_example():
    losses = torch.tensor([1.0, 1.5, 2.0, 50.0], requires_grad=True)
    tilted_mean(losses, 1e9).backward()
    assert torch.isfinite(losses.grad).all()
    torch.testing.assert_close(losses.grad, torch.tensor([0.0, 0.0, 0.0, 1.0]))
    # ERM spreads the gradient evenly
    erm = torch.tensor([1.0, 1.5, 2.0, 50.0], requires_grad=True)
    tilted_mean(erm, 0.0).backward()
    torch.testing.assert_close(erm.grad, torch.full((4,), 0.25))
    # moderate tilt: softmax weights, all positive, summing to 1, largest on the extreme one
    mid = torch.tensor([1.0, 1.5, 2.0, 3.0], requires_grad=True)
    tilted_mean(mid, 1.0).backward()
    assert mid.grad.sum().item() == pytest.approx(1.0) and (mid.grad > 0).all() and mid.grad.argmax() == 3


def test_one_extreme_example_dominates_a_tilted_batch_but_not_erm():
    base = torch.ones(1000)
    spiked = base.clone()
    spiked[7] = 100.0
    assert tilted_mean(spiked, 0.0).item() == pytest.approx(1.099, abs=1e-3)   # ERM barely moves
    assert tilted_mean(spiked, 1e9).item() == pytest.approx(100.0)             # TERM follows the outlier
    # at t = 1 the outlier still counts fully: 100 - log(1000) (+ a negligible e^-99 term)
    assert tilted_mean(spiked, 1.0).item() == pytest.approx(100 - math.log(1000), abs=1e-3)


def test_loss_scale_normalisation_makes_t_scale_free():
    losses = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    a = tilted_mean(losses, 2.0, "loss_scale")
    b = tilted_mean(1e6 * losses, 2.0, "loss_scale")
    assert (b / a).item() == pytest.approx(1e6)
    assert tilted_mean(losses, 1e-9, "loss_scale").item() == pytest.approx(4.0, rel=1e-6)
    # raw tilt at the same t is not scale-free: scaled losses are pushed to the max
    assert tilted_mean(1e6 * losses, 2.0).item() == pytest.approx(9e6, rel=1e-6)


def test_stacked_losses_are_tilted_per_row():
    losses = torch.tensor([[1.0, 3.0], [10.0, 30.0]])
    out = tilted_mean(losses, 1e9)
    torch.testing.assert_close(out, torch.tensor([3.0, 30.0]))


def test_sae_objective_choices():
    mse = torch.tensor([1.0, 1.0, 1.0, 5.0])
    l1 = torch.tensor([2.0, 0.0, 0.0, 0.0])
    assert sae_objective(mse, l1, TiltConfig()).item() == pytest.approx(2.5)              # ERM
    assert sae_objective(mse, l1, TiltConfig(t=1e9)).item() == pytest.approx(5.0)         # max of mse+l1
    only_mse = TiltConfig(t=1e9, include_l1=False)
    assert sae_objective(mse, l1, only_mse).item() == pytest.approx(5.0 + 0.5)            # max mse + mean l1
    seqs = torch.tensor([0, 0, 1, 1])
    by_seq = TiltConfig(t=1e9, over="sequences")
    assert sae_objective(mse, l1, by_seq, seqs).item() == pytest.approx(3.0)              # max of seq means (3, 3)
    with pytest.raises(ValueError, match="sequence ids"):
        sae_objective(mse, l1, by_seq)
    torch.testing.assert_close(per_sequence(mse, torch.tensor([5, 5, 9, 9])), torch.tensor([1.0, 3.0]))


def test_config_validation():
    assert TiltConfig().is_erm and TiltConfig().label() == "ERM"
    assert TiltConfig(t=500).label() == "TERM t=500"
    assert TiltConfig.from_dict(TiltConfig(t=1e9, over="sequences").to_dict()) == TiltConfig(t=1e9, over="sequences")
    for bad in ({"t": math.inf}, {"t": float("nan")}, {"over": "docs"}, {"normalize": "z"}):
        with pytest.raises(ValueError):
            TiltConfig(**bad)


def test_tiny_tilts_do_not_cancel_to_zero_in_float32():
    # logsumexp(t L) - log N loses every digit at t = 1e-7 in float32; the small-tilt form must not
    losses = torch.tensor([[4.9, 5.0, 5.2]], dtype=torch.float32, requires_grad=True)
    value = tilted_mean(losses, 1e-7)
    value.sum().backward()
    assert value.item() == pytest.approx(losses.mean().item(), rel=1e-6)
    assert torch.allclose(losses.grad, torch.full_like(losses, 1 / 3), atol=1e-6)
    exact = lambda t: float((torch.logsumexp(t * losses.detach().double(), -1) - math.log(3)) / t)  # noqa: E731
    for t in (1e-3, -1e-4, 0.5, 50.0):          # both forms agree with float64 on either side of the switch
        assert tilted_mean(losses.detach(), t).item() == pytest.approx(exact(t), rel=1e-6)
