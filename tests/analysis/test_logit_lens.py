"""Logit lens: exact top-k on hand-built directions, the final-norm scale, blocked top-k, cache."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ssae_utils.analysis.logit_lens import cached_top_tokens, lens_directions, top_tokens

# d_model 3, vocabulary 6: token t reads dimension t % 3 with sign + for t < 3 and - after
W_U = torch.tensor([[1.0, 0, 0, -1, 0, 0],
                    [0, 1.0, 0, 0, -1, 0],
                    [0, 0, 1.0, 0, 0, -1]])


def test_top_tokens_of_hand_built_directions():
    W_dec = torch.tensor([[1.0, 0.2, 0.0],     # mostly dim 0
                          [0.0, -1.0, 0.5]])   # against dim 1, a little dim 2
    top = top_tokens(W_dec, W_U, k=2, progress=False)
    assert top.indices.tolist() == [[0, 1], [4, 2]]
    assert torch.allclose(top.values, torch.tensor([[1.0, 0.2], [1.0, 0.5]]))


def test_final_norm_scale_changes_the_ranking():
    # g = (1, 10, 1): the readout weighs dimension 1 ten times, so (1, 0.2, 0) promotes token 1
    scale = torch.tensor([1.0, 10.0, 1.0])
    d = torch.tensor([[1.0, 0.2, 0.0]])
    assert top_tokens(d, W_U, 1, progress=False).indices.item() == 0
    assert top_tokens(lens_directions(d, scale), W_U, 1, progress=False).indices.item() == 1
    assert torch.equal(lens_directions(d, None), d)
    with pytest.raises(ValueError, match="dimensions"):
        lens_directions(d, torch.ones(4))


class RecordingWU:
    """W_U stand-in that records the width of every vocabulary slice taken from it."""

    def __init__(self, w):
        self.w, self.widths = w, []
        self.shape, self.ndim, self.device, self.dtype = w.shape, w.ndim, w.device, w.dtype

    def __getitem__(self, key):
        block = self.w[key]
        self.widths.append(block.shape[1])
        return block


def test_blocked_top_k_equals_brute_force_and_never_takes_a_wide_block():
    gen = torch.Generator().manual_seed(1)
    dirs, w = torch.randn(50, 16, generator=gen), torch.randn(16, 101, generator=gen)
    recording = RecordingWU(w)
    top = top_tokens(dirs, recording, k=10, feature_chunk=7, vocab_chunk=13, progress=False)
    ref_v, ref_i = (dirs @ w).topk(10, dim=1)
    assert torch.allclose(top.values, ref_v, atol=1e-5)
    assert torch.equal(top.indices, ref_i)
    assert max(recording.widths) == 13 and len(recording.widths) == 8 * 8  # 8 feature blocks x 8 vocabulary blocks


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="d_in=4"):
        top_tokens(torch.ones(2, 4), W_U, 1, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        top_tokens(torch.ones(2, 3), W_U, 7, progress=False)


def _fake_lm(scale):
    return SimpleNamespace(d_model=3, fingerprint="toy", W_U=W_U, tl=SimpleNamespace(ln_final=SimpleNamespace(w=scale)))


def test_cached_top_tokens_uses_the_norm_scale_and_the_cache(tmp_cache):
    lm = _fake_lm(torch.tensor([1.0, 10.0, 1.0]))
    W_dec = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.0, 1.0]])
    first, hit = cached_top_tokens(W_dec, lm, 1, 1, 4)
    assert not hit and first.indices.flatten().tolist() == [1, 2]
    again, hit = cached_top_tokens(W_dec.clone(), lm, 1, 1, 4)
    assert hit and torch.equal(again.indices, first.indices)
    _, hit = cached_top_tokens(W_dec + 1e-3, lm, 1, 1, 4)  # another decoder: recomputed
    assert not hit
    with pytest.raises(ValueError, match="d_in=4"):
        cached_top_tokens(torch.ones(2, 4), lm, 1, 1, 4)
