"""Budget selection, the baselines and quality metrics on hand-made sets."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from ssae_utils.data import Document, make_document
from ssae_utils.retrieval import (Selection, general_baseline, jaccard, overlap_matrix,
                                  precision_at_k, precision_recall, prefilter, rank_scores,
                                  recall_at_k, seed_only_baseline, select_to_budget,
                                  selection_quality)


def _pool(n=6):
    docs = []
    for i in range(n):
        meta = {"known_domain": "physics"} if i in (1, 3) else {}
        docs.append(make_document(f"document number {i}", "wiki" if i % 2 else "news",
                                  "t", meta))
    return docs


COUNTS = [10, 20, 30, 40, 50, 60]


def test_rank_scores_order_and_ties():
    idx, sc = rank_scores(np.array([1.0, 3.0, 3.0, 0.0, 2.0]))
    assert idx.tolist() == [1, 2, 4, 0, 3] and sc.tolist() == [3, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="NaN"):
        rank_scores(np.array([1.0, np.nan]))


@pytest.mark.parametrize("budget,expected", [
    (1, [5]),            # any positive budget takes at least one document
    (60, [5]),           # exactly reached: stop, no extra document
    (61, [5, 4]),        # crossing document kept whole (overshoot 49)
    (110, [5, 4]),
    (111, [5, 4, 3]),
    (210, [5, 4, 3, 2, 1, 0]),   # the whole pool exactly
])
def test_select_to_budget_boundaries(budget, expected):
    pool = _pool()
    scores = np.array([0.0, 1, 2, 3, 4, 5])                 # doc 5 best
    idx, sc = rank_scores(scores)
    sel = select_to_budget(pool, idx, sc, COUNTS, budget, strategy="bm25", domain="physics")
    assert sel.doc_ids == [pool[i].doc_id for i in expected]
    assert sel.total_tokens == sum(COUNTS[i] for i in expected) >= budget
    assert sel.overshoot == sel.total_tokens - budget
    assert sel.total_tokens - sel.token_counts[-1] < budget  # the last doc was needed
    assert sel.scores == [float(scores[i]) for i in expected]
    assert sel.budget_met


def test_token_counts_as_mapping_and_bad_counts():
    pool = _pool()
    idx, sc = rank_scores(np.arange(6.0))
    by_id = {d.doc_id: c for d, c in zip(pool, COUNTS)}
    a = select_to_budget(pool, idx, sc, by_id, 100, strategy="s", domain="physics")
    b = select_to_budget(pool, idx, sc, COUNTS, 100, strategy="s", domain="physics")
    assert a == b
    with pytest.raises(KeyError, match="no entry"):
        select_to_budget(pool, idx, sc, dict(list(by_id.items())[:3]), 100, strategy="s", domain="p")
    with pytest.raises(ValueError, match="non-negative"):
        select_to_budget(pool, idx, sc, [-1] * 6, 100, strategy="s", domain="p")
    with pytest.raises(ValueError, match="one count per document"):
        select_to_budget(pool, idx, sc, COUNTS[:5], 100, strategy="s", domain="p")


def test_budget_larger_than_pool(caplog):
    pool = _pool()
    idx, sc = rank_scores(np.arange(6.0))
    with pytest.raises(ValueError, match="exceeds the 210 tokens"):
        select_to_budget(pool, idx, sc, COUNTS, 211, strategy="bm25", domain="physics")
    with caplog.at_level(logging.WARNING):
        sel = select_to_budget(pool, idx, sc, COUNTS, 500, strategy="bm25", domain="physics",
                               allow_short=True)
    assert not sel.budget_met and sel.total_tokens == 210 and sel.n_docs == 6
    assert "taking all" in caplog.text
    # a top-k ranking shorter than the budget needs is reported the same way
    with pytest.raises(ValueError, match="2 ranked documents"):
        select_to_budget(pool, idx[:2], sc[:2], COUNTS, 150, strategy="dense", domain="physics")


def test_select_bad_input():
    pool = _pool()
    idx, sc = rank_scores(np.arange(6.0))
    with pytest.raises(ValueError, match="duplicate"):
        select_to_budget(pool, np.array([1, 1]), None, COUNTS, 5, strategy="s", domain="p")
    with pytest.raises(IndexError):
        select_to_budget(pool, np.array([9]), None, COUNTS, 5, strategy="s", domain="p")
    with pytest.raises(ValueError, match="descending"):
        select_to_budget(pool, idx, sc[::-1], COUNTS, 5, strategy="s", domain="p")
    with pytest.raises(ValueError, match="budget must be"):
        select_to_budget(pool, idx, sc, COUNTS, 0, strategy="s", domain="p")
    bad = pool[:5] + [Document("x:1", b"raw bytes", "x")]
    with pytest.raises(TypeError, match="bytes"):
        select_to_budget(bad, idx, sc, COUNTS, 5, strategy="s", domain="p")
    with pytest.raises(TypeError, match="not a Document"):
        select_to_budget(pool[:5] + ["text"], idx, sc, COUNTS, 5, strategy="s", domain="p")


def test_breakdown_and_json_roundtrip():
    pool = _pool()
    idx, sc = rank_scores(np.arange(6.0))
    sel = select_to_budget(pool, idx, sc, COUNTS, 150, strategy="bm25", domain="physics",
                           meta={"backend": "sparse"})
    assert sel.breakdown["source"] == {"news": {"docs": 1, "tokens": 50},
                                       "wiki": {"docs": 2, "tokens": 100}}
    assert sel.breakdown["known_domain"]["physics"] == {"docs": 1, "tokens": 40}
    assert sel.meta["backend"] == "sparse"
    again = Selection.from_dict(json.loads(json.dumps(sel.to_dict())))
    assert again == sel
    with pytest.raises(ValueError, match="unknown Selection"):
        Selection.from_dict({**sel.to_dict(), "extra": 1})


def test_general_baseline_seeded():
    pool = _pool()
    a = general_baseline(pool, COUNTS, 100, domain="physics", seed=1)
    b = general_baseline(pool, COUNTS, 100, domain="physics", seed=1)
    c = general_baseline(pool, COUNTS, 100, domain="physics", seed=2)
    assert a == b and a.scores is None and a.strategy == "general"
    assert a.total_tokens >= 100 and a.total_tokens - a.token_counts[-1] < 100
    assert a.meta["seed"] == 1
    full = [general_baseline(pool, COUNTS, 210, domain="p", seed=s).doc_ids for s in (1, 2, 3)]
    assert all(sorted(f) == sorted(d.doc_id for d in pool) for f in full)
    assert len({tuple(f) for f in full}) > 1 or c.doc_ids != a.doc_ids  # the seed matters


def test_seed_only_baseline():
    seeds = _pool(3)
    sel = seed_only_baseline(seeds, [5, 6, 7], passes=4, domain="physics")
    assert sel.doc_ids == [d.doc_id for d in seeds] and sel.passes == 4
    assert sel.total_tokens == 18 and sel.training_tokens == 72 and sel.budget is None
    assert sel.training_doc_ids() == sel.doc_ids * 4
    with pytest.raises(ValueError, match="seed set is empty"):
        seed_only_baseline([], [], passes=2, domain="physics")
    with pytest.raises(ValueError, match="passes"):
        seed_only_baseline(seeds, [5, 6, 7], passes=0, domain="physics")


def test_prefilter_takes_documents_until_the_token_target():
    idx, _ = rank_scores(np.arange(200.0))                  # best first: 199, 198, ...
    counts = np.full(200, 10)
    assert prefilter(idx, counts, 20).tolist() == [199, 198]
    assert prefilter(idx, counts, 21).tolist() == [199, 198, 197]   # crossing doc kept whole
    with pytest.raises(ValueError, match="exceeds"):
        prefilter(idx[:1], counts, 20)


def test_quality_metrics_hand_made():
    pos = {"a", "b", "c", "d"}
    pr = precision_recall(["a", "b", "x", "y", "z"], pos)
    assert (pr["hits"], pr["precision"], pr["recall"]) == (2, 0.4, 0.5)
    assert pr["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert precision_recall([], pos)["precision"] == 0.0
    unlabelled = precision_recall(["a"], [])          # the paper's pool has no planted positives
    assert unlabelled["precision"] is None and unlabelled["recall"] is None and unlabelled["positives"] == 0
    assert precision_at_k(["a"], [], 1) is None
    ranked = ["a", "x", "b", "y", "c"]
    assert precision_at_k(ranked, pos, 1) == 1.0
    assert precision_at_k(ranked, pos, 4) == 0.5
    assert precision_at_k(ranked, pos, 10) == 0.3                 # missing ranks are misses
    assert recall_at_k(ranked, pos, 3) == 0.5
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard([], []) == 1.0 and jaccard(["a"], []) == 0.0
    m = overlap_matrix({"x": ["a", "b"], "y": ["b", "c"]})
    assert m["x"]["x"] == 1.0 and m["x"]["y"] == m["y"]["x"] == pytest.approx(1 / 3)


def test_selection_quality_on_documents():
    pool = _pool()
    idx, sc = rank_scores(np.array([0.0, 5, 1, 4, 2, 3]))          # positives 1, 3 ranked first
    sel = select_to_budget(pool, idx, sc, COUNTS, 60, strategy="bm25", domain="physics")
    positives = [d for d in pool if d.meta.get("known_domain") == "physics"]
    q = selection_quality(sel, positives, ks=(1, 2, 5))
    assert q["precision"] == 1.0 and q["recall"] == 1.0
    assert q["precision_at_k"] == {1: 1.0, 2: 1.0}


def test_auroc_hand_made():
    from ssae_utils.retrieval import auroc

    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5      # ties count half
    assert auroc([3, 1, 2, 0], [True, True, False, False]) == 0.75     # 3 of 4 pairs ordered
    assert auroc([1, 2], [True, True]) is None
    with pytest.raises(ValueError, match="NaN"):
        auroc([float("nan"), 1], [True, False])


def test_score_histograms_split_positives_and_others_on_shared_edges():
    from ssae_utils.retrieval import score_histograms

    h = score_histograms([0.0, 1.0, 2.0, 3.0], [True, False, False, True], bins=3)
    assert len(h["edges"]) == 4 and h["edges"][0] == 0.0
    assert h["positives"] == [1, 0, 1] and h["others"] == [1, 1, 0]   # edges are [0, 1+, 2+, 3+]
