"""BM25 tokenization and scoring: the sparse backend equals rank-bm25 to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.retrieval import (RetrievalConfig, available_bm25_backends, build_bm25,
                                  check_text, query_scores, tokenize, tokenize_all)

CORPUS = [
    "The photon is a quantum of the electromagnetic field.",
    "Quantum mechanics describes photons, electrons and other particles.",
    "The match ended in a draw after extra time.",
    "Electrons orbit the nucleus; the nucleus holds protons and neutrons.",
    "Stock markets fell as energy prices rose.",
    "Energy is conserved: the total energy of an isolated system is constant.",
    "You are an idiot and a moron.",
    "The the the photon photon energy.",
    "Kinetic energy grows with the square of velocity, the theory says.",
    "A short one.",
]


def test_tokenize_rule():
    assert tokenize("The Photon's energy, E=hν!") == ["photon", "energy", "hν"]
    assert tokenize("don't quasi-particle 42 x 7") == ["don", "quasi", "particle", "42", "7"]
    assert tokenize("Élan VITAL élan") == ["élan", "vital", "élan"]     # lower-cased, NFC
    assert tokenize("photons photon") == ["photons", "photon"]         # no stemming
    assert tokenize("the of and") == []
    assert tokenize("snake_case") == ["snake_case"]                    # \w includes _


@pytest.mark.parametrize("bad,err", [(b"bytes", TypeError), (None, TypeError), (3, TypeError),
                                     ("lone \ud800 surrogate", ValueError)])
def test_tokenize_rejects_non_text(bad, err):
    with pytest.raises(err):
        tokenize(bad)
    with pytest.raises(err):
        check_text(bad)


def test_backends_registered():
    assert {"sparse", "rank_bm25", "bm25s"} <= set(available_bm25_backends())
    with pytest.raises(KeyError, match="unknown BM25 backend"):
        build_bm25(tokenize_all(CORPUS), "nope")


@pytest.mark.parametrize("k1,b,eps", [(1.5, 0.75, 0.25), (0.9, 0.4, 0.5), (2.0, 1.0, 0.0)])
def test_sparse_equals_rank_bm25(k1, b, eps):
    toks = tokenize_all(CORPUS)
    ref = build_bm25(toks, "rank_bm25", k1=k1, b=b, epsilon=eps)
    fast = build_bm25(toks, "sparse", k1=k1, b=b, epsilon=eps)
    queries = [["photon", "energy"], ["energy", "energy", "unknownterm"], ["idiot"], [],
               tokenize("the photon energy of electrons in the nucleus"),
               [t for d in toks for t in d]]          # every corpus token, with repeats
    for q in queries:
        np.testing.assert_allclose(fast.score(q), ref.score(q), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.score_many(queries), ref.score_many(queries), atol=1e-6)


def test_sparse_equals_rank_bm25_random_corpus():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, 301)
    p /= p.sum()
    corpus = [list(rng.choice(vocab, size=rng.integers(1, 60), p=p)) for _ in range(200)]
    ref = build_bm25(corpus, "rank_bm25")
    fast = build_bm25(corpus, "sparse")
    assert abs(ref.model.average_idf - fast.average_idf) < 1e-12
    for _ in range(5):
        q = list(rng.choice(vocab, size=40, p=p))
        np.testing.assert_allclose(fast.score(q), ref.score(q), atol=1e-6)


def test_negative_idf_floor_matches_reference():
    # "energy" is in > half the docs -> negative raw idf -> epsilon * mean idf
    corpus = [["energy", "a"], ["energy", "b"], ["energy", "c"], ["d"]]
    ref = build_bm25(corpus, "rank_bm25")
    fast = build_bm25(corpus, "sparse")
    np.testing.assert_allclose(fast.score(["energy"]), ref.score(["energy"]), atol=1e-12)


def test_query_modes():
    toks = tokenize_all(CORPUS)
    index = build_bm25(toks, "sparse")
    seeds = ["photon energy", "electrons and the nucleus", "energy conserved"]
    concat = query_scores(index, seeds, "concatenated")
    summed = query_scores(index, seeds, "per_seed_sum")
    np.testing.assert_allclose(concat, summed, atol=1e-9)       # BM25 is additive over terms
    per_seed = np.stack([index.score(tokenize(s)) for s in seeds])
    np.testing.assert_allclose(query_scores(index, seeds, "per_seed_max"), per_seed.max(0))
    # the same on the reference backend
    ref = build_bm25(toks, "rank_bm25")
    for mode in ("concatenated", "per_seed_sum", "per_seed_max"):
        np.testing.assert_allclose(query_scores(ref, seeds, mode), query_scores(index, seeds, mode), atol=1e-6)


def test_query_bad_input():
    index = build_bm25(tokenize_all(CORPUS), "sparse")
    with pytest.raises(ValueError, match="seed set is empty"):
        query_scores(index, [], "concatenated")
    with pytest.raises(ValueError, match="no terms"):
        query_scores(index, ["the of", "!!"], "concatenated")
    with pytest.raises(ValueError, match="unknown BM25 query mode"):
        query_scores(index, ["photon"], "nope")
    with pytest.raises(TypeError):
        query_scores(index, [b"photon"], "concatenated")
    with pytest.raises(ValueError, match="empty corpus"):
        build_bm25([], "sparse")


def test_bm25s_backend_ranks_sensibly():
    pytest.importorskip("bm25s")
    index = build_bm25(tokenize_all(CORPUS), "bm25s")
    scores = index.score(["photon"])
    assert scores.shape == (len(CORPUS),)
    assert set(np.flatnonzero(scores > 0)) == {0, 7}
    assert np.all(index.score(["unknownterm"]) == 0)


def test_config_validation_and_presets():
    assert RetrievalConfig.smoke().embedder == "hashing"
    assert RetrievalConfig.embedded().embedder == "minilm"
    paper = RetrievalConfig.paper()
    assert paper.embedder == "contriever"
    assert RetrievalConfig.from_dict(paper.to_dict()) == paper
    as_json = {**paper.to_dict(), "tracin_params": ["W_enc", "b_enc"]}   # lists come from JSON
    assert RetrievalConfig.from_dict(as_json).tracin_params == ("W_enc", "b_enc")
    for bad in ({"bm25_backend": "x"}, {"bm25_query": "x"}, {"embedder": "x"},
                {"prefilter_budget_multiple": 1.0}, {"seed_passes": 0},
                {"dense_query": "x"}, {"embed_dtype": "float16"}, {"tracin_max_doc_tokens": 0},
                {"tracin_l1_weighting": "l2"}, {"tracin_l1_coefficient": -1.0},
                {"tracin_params": ("W_x",)}, {"tracin_params": ()}, {"tracin_batch_tokens": 0}):
        with pytest.raises(ValueError):
            RetrievalConfig(**bad)
    with pytest.raises(ValueError, match="unknown RetrievalConfig"):
        RetrievalConfig.from_dict({"nope": 1})

