"""Windows, window maxima, feature choice and the explain/score examples of a feature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssae_utils.autointerp.examples import (
    Example,
    ExampleBuilder,
    choose_windows,
    scorable,
    select_features,
    token_pieces,
    window_index,
    window_maxima,
)


def test_windows_follow_contexts_documents_and_slots():
    # doc 0: one context of positions 1..5, then a second context 1..3; doc 1: positions 1..2
    positions = torch.tensor([1, 2, 3, 4, 5, 1, 2, 3, 1, 2])
    docs = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    index = window_index(positions, docs, torch.arange(10), window_tokens=2)
    assert index.window_of_token.tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5]
    assert index.n_windows == 6
    assert index.full.tolist() == [True, True, False, True, False, True]
    assert index.tokens_of(3).tolist() == [5, 6]
    # a new document starts a new window even when positions keep growing
    index = window_index(torch.tensor([1, 2, 3, 4]), torch.tensor([0, 0, 1, 1]), torch.arange(4), window_tokens=8)
    assert index.window_of_token.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        window_index(torch.tensor([1]), torch.tensor([0, 0]), torch.tensor([1]), 2)


def test_window_maxima_take_the_max_and_ignore_invalid_tokens():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    index = window_index(torch.tensor([1, 2, 3, 4]), torch.zeros(4, dtype=torch.long), torch.arange(4), 2)

    def encode(x):  # feature 0 = first coordinate, feature 1 = relu(second - 1)
        return torch.stack([x[:, 0], (x[:, 1] - 1).clamp_min(0)], 1)

    maxima = window_maxima(encode, acts, index, batch_size=3)  # batches straddle windows
    assert maxima.tolist() == [[3.0, 0.0], [5.0, 1.0]]
    valid = torch.tensor([True, True, True, False])
    assert window_maxima(encode, acts, index, valid).tolist() == [[3.0, 0.0], [0.0, 1.0]]


def test_scorable_and_feature_selection():
    counts = torch.tensor([20, 14, 15, 100, 30, 96])
    ok = scorable(counts, n_windows=100, n_explain=10, n_quantile=5, n_random=5)
    assert ok.tolist() == [True, False, True, False, True, False]  # too few firing / too few silent
    eligible = torch.zeros(50, dtype=torch.bool)
    eligible[[3, 7, 11, 20, 21, 30, 40, 41]] = True
    chosen = select_features(eligible, n_features=5, n_first=2, seed=0)
    assert chosen[:2] == [3, 7] and len(set(chosen)) == 5 and all(eligible[c] for c in chosen)
    assert chosen == select_features(eligible, 5, 2, seed=0)
    assert select_features(eligible, 100, 2, seed=0)[2:] != select_features(eligible, 100, 2, seed=1)[2:]
    assert len(select_features(eligible, 100, 10, seed=0)) == 8


def test_choose_windows_top_quantiles_and_silent():
    acts = np.zeros(60)
    acts[:30] = np.arange(30, 0, -1)  # windows 0..29 fire with decreasing activation
    explain, quantile, random = choose_windows(acts, 10, 5, 5, np.random.default_rng(0))
    assert explain == list(range(10))
    # remaining firing windows 10..29 in 5 bins of 4: one from each
    assert [q // 4 for q in (np.array(quantile) - 10)] == [0, 1, 2, 3, 4]
    assert len(set(random)) == 5 and all(acts[r] == 0 for r in random)
    with pytest.raises(ValueError, match="needs"):
        choose_windows(acts[:14], 10, 5, 5, np.random.default_rng(0))
    usable = np.ones(60, dtype=bool)
    usable[[0, 40, 41]] = False  # e.g. short windows: never chosen, as firing or as silent
    explain, quantile, random = choose_windows(acts, 10, 5, 5, np.random.default_rng(0), usable)
    assert explain == list(range(1, 11)) and not {0, 40, 41} & set(quantile + random)


def test_marked_text_wraps_runs_of_firing_tokens():
    e = Example(0, [" a", " b", " c", " d", " e"], [0.0, 2.0, 1.0, 0.0, 0.5], "top", 1)
    assert e.marked_text() == " a<< b c>> d<< e>>"
    assert e.marked_text(mark_fraction=0.4) == " a<< b c>> d e"
    assert e.marked_tokens(0.4) == [" b", " c"]
    assert e.plain_text() == " a b c d e"


def test_builder_gives_seeded_examples_with_truth():
    torch.manual_seed(0)
    n_tokens = 400
    acts = torch.randn(n_tokens, 4)
    positions = torch.tensor([1 + (i % 100) for i in range(n_tokens)])
    index = window_index(positions, torch.zeros(n_tokens, dtype=torch.long), torch.arange(n_tokens), 5)

    def encode(x):
        return torch.relu(x - 1.0)

    maxima = window_maxima(encode, acts, index)
    def decode(ids):
        return "".join(f" t{t}\n" for t in ids)

    feats = ExampleBuilder("M", encode, acts, index, decode).build([0, 2], maxima, 10, 5, 5, seed=3)
    again = ExampleBuilder("M", encode, acts, index, decode).build([2], maxima, 10, 5, 5, seed=3)
    f = feats[1]
    assert f.feature == 2 and [e.window for e in f.score] == [e.window for e in again[0].score]
    assert sorted(f.truth) == [0] * 5 + [1] * 5
    assert [e.label for e in f.score] == [int(e.max_act > 0) for e in f.score]
    tops = [e.max_act for e in f.explain]
    assert tops == sorted(tops, reverse=True) and tops[0] == pytest.approx(f.max_activation, rel=1e-4)
    assert max(e.max_act for e in f.score) <= min(tops) + 1e-6  # scoring windows are not the top ones
    assert "\n" not in f.explain[0].plain_text()  # one example per line


def test_token_pieces_give_a_split_character_to_the_token_that_completes_it():
    # a byte-level vocabulary: ids are bytes of UTF-8 text
    def decode(ids):
        return bytes(ids).decode("utf-8", errors="replace")

    ids = list("a \u00b5m".encode())  # "µ" is two bytes
    assert token_pieces(decode, ids) == ["a", " ", "", "\u00b5", "m"]
    assert "".join(token_pieces(decode, ids)) == decode(ids)
