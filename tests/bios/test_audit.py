"""Top activating tokens of selected features."""

from __future__ import annotations

import torch

from ssae_utils.bios.audit import encode_subset, top_tokens
from ssae_utils.bios.pooling import DocTokens


class _Tok:
    def decode(self, ids):
        return "".join(f"<{i}>" for i in ids)


def test_encode_subset_matches_encode(tiny_sae):
    x = torch.randn(25, 6)
    assert torch.allclose(encode_subset(tiny_sae, x, [7, 2]), tiny_sae.encode(x)[:, [7, 2]], atol=1e-6)


def test_top_tokens_name_the_token_a_feature_fires_on(tiny_sae):
    direction = tiny_sae.W_enc[:, 4].detach()
    base = torch.randn(30, 6) * 0.01 + tiny_sae.b_dec.detach()
    token_ids = torch.arange(30) % 5
    acts = base + torch.where(token_ids[:, None] == 3, 5 * direction / direction.norm() ** 2, torch.zeros(6))
    tokens = DocTokens(acts, token_ids, torch.arange(30) // 10, 3)
    info = top_tokens(tiny_sae, tokens, [4], _Tok(), k=2)
    assert info[4]["tokens"][0]["token"] == "<3>" and info[4]["tokens"][0]["count"] == 6
    assert "<<<3>>>" in info[4]["top_context"]
