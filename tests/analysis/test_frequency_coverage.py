"""Token counts, log buckets, covered shares, cumulative coverage and the tail table, by hand."""

from __future__ import annotations

import pytest
import torch

from ssae_utils.analysis.coverage import (
    bucket_shares,
    covered_mask,
    cumulative_coverage,
    features_covering,
    tail_token_table,
)
from ssae_utils.analysis.frequency import count_ids, log_buckets, split_token_counts
from ssae_utils.analysis.logit_lens import lens_directions, top_tokens


class DictTokenizer:
    def __init__(self, words):
        self.ids = {w: i for i, w in enumerate(words)}

    def encode(self, text, add_special_tokens=False):
        return [self.ids[w] for w in text.split()]


def test_split_token_counts_match_the_activation_cache_chunking():
    tok = DictTokenizer(["<bos>", "a", "b", "c", "d"])
    # context_length 4 -> pieces of 3 tokens after BOS; a last piece shorter than min_tokens=2 is dropped
    counts = split_token_counts(["a a b c d", "b b b d", "c"], tok, 5, 0, 4, min_tokens=2)
    # doc 1: [a a b] [c d]; doc 2: [b b b] + [d] dropped; doc 3: [c] kept (a document's first piece)
    assert counts.tolist() == [0, 2, 4, 2, 1]
    with pytest.raises(ValueError, match="0..4"):
        count_ids(torch.tensor([5]), 5)


COUNTS = torch.tensor([1, 1, 3, 2, 5, 0])  # token 5 never occurs


def test_log_buckets_have_integer_edges_and_hold_every_present_type_once():
    buckets = log_buckets(torch.tensor([1, 1, 3, 2, 4, 7, 8, 0]), base=2)
    assert [(b.lo, b.hi, b.token_ids) for b in buckets] == [(1, 2, (0, 1)), (2, 4, (2, 3)), (4, 8, (4, 5)), (8, 16, (6,))]
    assert [b.label for b in buckets] == ["1", "2-3", "4-7", "8-15"]
    tens = log_buckets(torch.tensor([1, 9, 10, 250]), base=10)
    assert [(b.lo, b.hi, len(b.token_ids)) for b in tens] == [(1, 10, 2), (10, 100, 1), (100, 1000, 1)]
    fine = log_buckets(torch.arange(1, 6), base=1.5)
    assert sorted(t for b in fine for t in b.token_ids) == [0, 1, 2, 3, 4] and all(b.hi > b.lo for b in fine)
    with pytest.raises(ValueError):
        log_buckets(torch.zeros(3, dtype=torch.long))


def test_bucket_shares_and_cumulative_coverage_by_hand():
    covered = covered_mask(torch.tensor([[0, 1], [1, 2]]), 6)
    assert covered.tolist() == [True, True, True, False, False, False]
    shares = bucket_shares(covered, COUNTS, log_buckets(COUNTS, 2))
    assert [(s["label"], s["n_types"], s["n_covered"], s["share"], s["n_occurrences"]) for s in shares] == [
        ("1", 2, 2, 1.0, 2), ("2-3", 2, 1, 0.5, 5), ("4-7", 1, 0, 0.0, 5)]
    cum = cumulative_coverage(covered, COUNTS)
    assert cum["count"] == [1, 2, 3, 5] and cum["n_covered"] == 3
    assert cum["x"] == pytest.approx([2 / 12, 4 / 12, 7 / 12, 1.0])
    assert cum["x_types"] == pytest.approx([2 / 5, 3 / 5, 4 / 5, 1.0])
    assert cum["y"] == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    alive_only = covered_mask(torch.tensor([[0, 1], [1, 2]]), 6, torch.tensor([False, True]))
    assert alive_only.nonzero().flatten().tolist() == [1, 2]


def test_tiny_model_end_to_end_covered_tokens_and_bucket_shares():
    """Hand-built unembedding, final-norm scale and two decoders (general vs specialized)."""
    # vocabulary 6, d_model 3; token t is +e_(t%3) for t < 3 and -e_(t%3) after; g = (1, 10, 1)
    W_U = torch.tensor([[1.0, 0, 0, -1, 0, 0], [0, 1.0, 0, 0, -1, 0], [0, 0, 1.0, 0, 0, -1]])
    scale = torch.tensor([1.0, 10.0, 1.0])
    general = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])       # tokens 0, 2
    special = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.0, -1.0]])      # scaled: (1, 2, 0) -> token 1; token 5
    tops = {name: top_tokens(lens_directions(d, scale), W_U, 1, progress=False).indices
            for name, d in {"general": general, "special": special}.items()}
    covered = {name: covered_mask(t, 6) for name, t in tops.items()}
    assert covered["general"].nonzero().flatten().tolist() == [0, 2]
    assert covered["special"].nonzero().flatten().tolist() == [1, 5]
    counts = torch.tensor([40, 1, 9, 0, 3, 2])
    buckets = log_buckets(counts, 2)  # [1]: {1}; [2-3]: {4, 5}; [8-15]: {2}; [32-63]: {0}
    share = {name: [s["share"] for s in bucket_shares(c, counts, buckets)] for name, c in covered.items()}
    assert share["general"] == [0.0, 0.0, None, 1.0, None, 1.0]
    assert share["special"] == [1.0, 0.5, None, 0.0, None, 0.0]
    table = tail_token_table(covered, tops, counts, "general", ["special"], max_count=3, decode=lambda t: f"tok{t}")
    assert [(r["token"], r["count"], r["features"]) for r in table["rows"]] == [("tok1", 1, {"special": [0]}), ("tok5", 2, {"special": [1]})]
    assert table["summary"]["special"] == {"only_ssae": 2, "only_baseline": 0, "both": 0} and table["n_tail_types"] == 3


def test_tail_table_lists_only_tail_types_missed_by_the_baseline_and_counts_both_ways():
    tops = {"base": torch.tensor([[0]]), "A": torch.tensor([[1], [2]]), "B": torch.tensor([[0], [3]])}
    covered = {k: covered_mask(v, 6) for k, v in tops.items()}
    table = tail_token_table(covered, tops, COUNTS, "base", ["A", "B"], max_count=2, decode=str)
    assert [(r["token_id"], r["count"], r["covered_by"]) for r in table["rows"]] == [(1, 1, ["A"]), (3, 2, ["B"])]
    assert table["rows"][1]["features"] == {"B": [1]}
    assert table["baseline_only_rows"] == []  # token 0 (the baseline's only one) is also B's
    only_a = tail_token_table(covered, tops, COUNTS, "base", ["A"], max_count=2, decode=str)
    assert only_a["baseline_only_rows"] == [{"token_id": 0, "token": "0", "count": 1}]
    assert table["summary"] == {"A": {"only_ssae": 1, "only_baseline": 1, "both": 0},
                                "B": {"only_ssae": 1, "only_baseline": 0, "both": 1}}
    assert features_covering(torch.tensor([[4, 1], [1, 0], [2, 3]]), 1) == [0, 1]
    with pytest.raises(KeyError, match="C"):
        tail_token_table(covered, tops, COUNTS, "base", ["C"], 2, str)
