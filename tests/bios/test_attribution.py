"""Attribution of the probe's logit to SAE features, checked against autograd and ablation."""

from __future__ import annotations

import numpy as np
import torch

from ssae_utils.bios.attribution import attribution_autograd, feature_attribution, shift_scores
from ssae_utils.bios.pooling import DocTokens, pooled_features, pooled_residuals
from ssae_utils.bios.probe import LinearProbe
from ssae_utils.bios.shift import ablate_pooled


def _tokens(n_docs=3, per_doc=5, d=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(n_docs * per_doc, d, generator=gen)
    doc_index = torch.arange(n_docs).repeat_interleave(per_doc)
    return DocTokens(acts, torch.zeros(len(acts), dtype=torch.long), doc_index, n_docs)


def test_pooled_attribution_equals_autograd_through_the_token_level_sae(tiny_sae):
    tokens = _tokens()
    probe = LinearProbe(torch.randn(6, dtype=torch.float64), 0.3)
    pooled = pooled_features(tiny_sae, tokens)
    ours = feature_attribution(pooled, tiny_sae.W_dec.detach(), probe)
    for doc in range(tokens.n_docs):
        reference = attribution_autograd(tiny_sae, tokens.acts[tokens.doc_index == doc], probe)
        assert torch.allclose(ours[doc], reference, atol=1e-5)
        assert (reference != 0).any()


def test_attribution_is_the_logit_change_of_zero_ablating_each_feature(tiny_sae):
    tokens = _tokens(seed=1)
    probe = LinearProbe(torch.randn(6, dtype=torch.float64), -0.2)
    x, pooled = pooled_residuals(tokens), pooled_features(tiny_sae, tokens)
    W = tiny_sae.W_dec.detach()
    attribution = feature_attribution(pooled, W, probe)
    for i in range(W.shape[0]):
        change = probe.logits(x) - probe.logits(ablate_pooled(x, pooled, W, [i]))
        assert torch.allclose(change, attribution[:, i], atol=1e-4)


def test_shift_scores_sign_towards_each_documents_label():
    pooled = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    probe = LinearProbe(torch.tensor([2.0, -1.0], dtype=torch.float64), 0.0)
    scores = shift_scores(pooled, W, probe, np.array([1, 0]))
    # feature 0 pushes both logits up: +2 for the label-1 document, -2 for the label-0 one
    assert torch.allclose(scores, torch.tensor([0.0, 1.0], dtype=torch.float64))
