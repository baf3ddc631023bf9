"""Zero ablation keeping the SAE error term, retraining, and the random baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssae_utils.bios.metrics import shift_metrics
from ssae_utils.bios.pooling import DocTokens, pooled_features, pooled_residuals
from ssae_utils.bios.probe import fit_probe
from ssae_utils.bios.shift import ablate_and_evaluate, ablate_pooled, ablate_tokens, random_features


def test_ablating_nothing_returns_the_activations_exactly(tiny_sae):
    acts = torch.randn(20, 6) * 1000
    assert torch.equal(ablate_tokens(tiny_sae, acts, []), acts)
    pooled_f = pooled_features(tiny_sae, DocTokens(acts, torch.zeros(20, dtype=torch.long), torch.zeros(20, dtype=torch.long), 1))
    assert torch.equal(ablate_pooled(acts[:1], pooled_f, tiny_sae.W_dec.detach(), []), acts[:1])


def test_ablation_keeps_the_error_term(tiny_sae):
    acts = torch.randn(30, 6)
    f = tiny_sae.encode(acts)
    error = acts - tiny_sae.decode(f)
    features = [1, 4, 7]
    f_ablated = f.clone()
    f_ablated[:, features] = 0
    expected = tiny_sae.decode(f_ablated) + error
    assert torch.allclose(ablate_tokens(tiny_sae, acts, features), expected, atol=1e-5)
    assert not torch.allclose(ablate_tokens(tiny_sae, acts, features), tiny_sae.decode(f_ablated), atol=1e-3)


def test_pooled_ablation_equals_pooling_the_token_ablation(tiny_sae):
    gen = torch.Generator().manual_seed(2)
    acts = torch.randn(24, 6, generator=gen)
    doc_index = torch.tensor([0] * 5 + [1] * 12 + [2] * 7)
    tokens = DocTokens(acts, torch.zeros(24, dtype=torch.long), doc_index, 3)
    features = [0, 3, 9]
    ablated_tokens = DocTokens(ablate_tokens(tiny_sae, acts, features), tokens.token_ids, doc_index, 3)
    direct = ablate_pooled(pooled_residuals(tokens), pooled_features(tiny_sae, tokens), tiny_sae.W_dec.detach(), features)
    assert torch.allclose(direct, pooled_residuals(ablated_tokens), atol=1e-5)
    with pytest.raises(IndexError):
        ablate_tokens(tiny_sae, acts, [10])


def _spurious_world(n=80, seed=0):
    """Pooled residuals = features @ decoder + noise, with a 2-feature dictionary: feature 0
    carries the profession (weakly), feature 1 exactly the gender (strongly)."""
    rng = np.random.default_rng(seed)
    W_dec = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])

    def sample(profession, gender):
        f = np.stack([1.0 * profession + 0.5, 3.0 * gender + 0.1], 1) + 0.05 * rng.random((len(profession), 2))
        x = f @ W_dec.numpy() + 0.15 * rng.standard_normal((len(profession), 4))
        return torch.tensor(x, dtype=torch.float32), torch.tensor(f, dtype=torch.float32)

    labels = np.repeat([0, 1], n // 2)                    # ambiguous: gender == profession
    amb_x, amb_f = sample(labels, labels)
    prof = np.repeat([0, 1], n // 2)                      # balanced test: all four groups
    gender = np.tile([0, 1], n // 2)
    test_x, test_f = sample(prof, gender)
    return W_dec, labels, amb_x, amb_f, prof, gender, test_x, test_f


def test_ablating_the_gender_feature_fixes_the_worst_group():
    W_dec, labels, amb_x, amb_f, prof, gender, test_x, test_f = _spurious_world()
    probe = fit_probe(amb_x, torch.tensor(labels))
    before = shift_metrics(probe.predict(test_x).numpy(), prof, gender)
    out = ablate_and_evaluate(probe, [1], W_dec, amb_x, amb_f, labels, test_x, test_f, 1e-2, 200)
    after = shift_metrics(out.pred_retrained, prof, gender)
    assert before["gender_acc"] > 0.8 and before["worst_group_acc"] < 0.3
    assert after["worst_group_acc"] > 0.8 and abs(after["gender_acc"] - 0.5) < 0.15
    no_retrain = ablate_and_evaluate(probe, [1], W_dec, amb_x, amb_f, labels, test_x, test_f, 1e-2, 200, retrain=False)
    assert no_retrain.pred_retrained is None and np.array_equal(no_retrain.pred, out.pred)


def test_random_features_are_seeded_and_drawn_from_active_ones():
    active = torch.tensor([True, False, True, True, False, True])
    a = random_features(active, 3, seed=0)
    assert a == random_features(active, 3, seed=0) and set(a) <= {0, 2, 3, 5} and len(set(a)) == 3
    assert random_features(active, 0, seed=0) == []
    with pytest.raises(ValueError, match="only 4 are active"):
        random_features(active, 5, seed=0)
