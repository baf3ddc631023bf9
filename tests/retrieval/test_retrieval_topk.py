"""The blockwise top-k equals faiss-cpu IndexFlatIP's ranking (after the tie sort) including
exact ties and k = n; DenseIndex's engine rule never asks faiss-gpu for k > 2048; float16
memory-mapped embedding shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssae_utils.retrieval import (DenseIndex, EmbeddingCacheError, EmbeddingShards, RetrievalConfig,
                                  blockwise_topk, dense_index_from_config, dense_topk, embed_cached,
                                  embed_pool, embed_to_shards, get_embedder)
from ssae_utils.retrieval.dense import FAISS_GPU_MAX_K


def _faiss_ranking(pool, queries, k):
    """faiss-cpu IndexFlatIP, then (score descending, index ascending)."""
    import faiss

    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    for r in range(len(queries)):
        order = np.lexsort((idx[r], -scores[r]))
        scores[r], idx[r] = scores[r][order], idx[r][order]
    return scores, idx


def _assert_same_ranking(idx, ref_idx, ref_scores, gap=1e-5):
    """Equal order wherever float32 rounding (faiss's) cannot swap neighbours."""
    gaps = np.abs(np.diff(np.asarray(ref_scores, dtype=np.float64)))
    clear = np.concatenate([[True], gaps > gap]) & np.concatenate([gaps > gap, [True]])
    np.testing.assert_array_equal(np.asarray(idx)[clear], np.asarray(ref_idx)[clear])


def _dyadic_pool(n=96, dim=16, seed=0):
    """Unit vectors with four entries of +-1/2: every dot product is a multiple of 1/4, exact
    in float16/32/64, so faiss and the blockwise search see identical scores and exact ties
    (a third of the rows are also duplicated elsewhere in the pool)."""
    rng = np.random.default_rng(seed)
    pool = np.zeros((n, dim), dtype=np.float32)
    for i in range(n):
        cols = rng.choice(dim, size=4, replace=False)
        pool[i, cols] = rng.choice([-0.5, 0.5], size=4)
    dup_from = rng.choice(n, size=n // 3, replace=False)
    dup_to = rng.choice(n, size=n // 3, replace=False)
    pool[dup_to] = pool[dup_from]
    return pool


@pytest.mark.parametrize("block_rows", [1, 7, 32, 1000])
@pytest.mark.parametrize("k", [1, 5, 23, 24, 60, 96, 500])
def test_blockwise_equals_faiss_with_exact_ties(block_rows, k):
    pool = _dyadic_pool()
    n = len(pool)
    queries = pool[[0, 3, 50]]
    full_s, full_i = _faiss_ranking(pool, queries, n)            # k = n: the whole tie-sorted ranking
    assert np.any(np.diff(full_s[0]) == 0)                       # the fixture has exact ties
    ref_s, ref_i = _faiss_ranking(pool, queries, min(k, n))
    for dtype in (np.float32, np.float16):                       # float16 is exact here
        s, i = blockwise_topk(pool.astype(dtype), queries, k, block_rows=block_rows, device="cpu")
        # the same scores as faiss at this k, and the prefix of faiss's full tie-sorted ranking
        np.testing.assert_array_equal(s, ref_s)
        np.testing.assert_array_equal(i, full_i[:, :min(k, n)])
        # faiss itself may return any members of the group tied at the k-th score; everything
        # above that score is the same set
        for r in range(len(queries)):
            above = ref_s[r] > ref_s[r][-1]
            assert set(i[r][above]) == set(ref_i[r][above])


def test_blockwise_matches_faiss_on_gaussian_data_with_duplicates():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(700, 32)).astype(np.float32)
    pool[[10, 300, 699]] = pool[5]                                        # exact duplicates
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[[5, 42]] + 0.05 * rng.normal(size=(2, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for k in (50, 700):
        ref_s, ref_i = _faiss_ranking(pool, queries, k)
        s, i = blockwise_topk(pool, queries, k, block_rows=64, device="cpu")
        np.testing.assert_allclose(s, ref_s, atol=1e-6)
        for r in range(2):
            _assert_same_ranking(i[r], ref_i[r], ref_s[r])
        pos = [np.flatnonzero(i[0] == j)[0] for j in (5, 10, 300, 699)]
        assert pos == list(range(pos[0], pos[0] + 4))                    # duplicates tie, by index


def test_reduce_max_is_the_per_seed_max_ranking():
    pool = _dyadic_pool(seed=2)
    seeds = pool[[1, 2, 9]]
    brute = (pool.astype(np.float64) @ seeds.T.astype(np.float64)).max(1)
    order = np.lexsort((np.arange(len(pool)), -brute))
    for k, block_rows in ((10, 8), (96, 8), (30, 1000)):
        s, i = blockwise_topk(pool, seeds, k, reduce="max", block_rows=block_rows, device="cpu")
        np.testing.assert_array_equal(i[0], order[:k])
        np.testing.assert_array_equal(s[0], brute[order[:k]].astype(np.float32))
    faiss_idx, faiss_sc = dense_topk(DenseIndex(pool), seeds, 40, "per_seed_max")
    block_idx, block_sc = dense_topk(DenseIndex(pool, backend="blockwise", device="cpu"), seeds, 40, "per_seed_max")
    np.testing.assert_array_equal(block_idx, faiss_idx)
    np.testing.assert_array_equal(block_sc, faiss_sc)


def test_blockwise_bad_input():
    pool = _dyadic_pool()
    with pytest.raises(ValueError, match="queries must be"):
        blockwise_topk(pool, pool[:1, :5], 3, device="cpu")
    with pytest.raises(ValueError, match="dense_block_rows"):
        blockwise_topk(pool, pool[:1], 3, block_rows=0, device="cpu")
    with pytest.raises(ValueError, match="reduce"):
        blockwise_topk(pool, pool[:1], 3, reduce="mean", device="cpu")


class _SpyFaiss:
    """Stands in for a faiss-gpu index: records every k it is asked for."""

    def __init__(self, index):
        self.index, self.ks = index, []

    def search(self, q, k):
        self.ks.append(k)
        if k > FAISS_GPU_MAX_K:
            raise RuntimeError("faiss-gpu: k > 2048")
        return self.index.search(q, k)


def _gpu_like(pool, backend="auto"):
    index = DenseIndex(pool, backend=backend, device="cpu")
    index.on_gpu = True                      # what faiss-gpu would report
    index.index = _SpyFaiss(index.index)
    return index


def test_faiss_gpu_is_never_asked_for_more_than_2048():
    rng = np.random.default_rng(3)
    pool = rng.normal(size=(3000, 8)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    seeds = pool[:4] + 0.3 * rng.normal(size=(4, 8)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    cpu = DenseIndex(pool)
    assert cpu.uses_faiss(3000) and not cpu.on_gpu        # faiss-cpu serves any k
    index = _gpu_like(pool)
    assert index.uses_faiss(FAISS_GPU_MAX_K) and not index.uses_faiss(FAISS_GPU_MAX_K + 1)
    for mode in ("mean", "per_seed_max"):
        small = dense_topk(index, seeds, 100, mode)          # faiss
        large = dense_topk(index, seeds, len(pool), mode)    # blockwise
        ref = dense_topk(cpu, seeds, len(pool), mode)        # faiss-cpu, k = n
        _assert_same_ranking(large[0][:100], small[0], small[1])
        _assert_same_ranking(large[0], ref[0], ref[1])
        np.testing.assert_allclose(large[1], ref[1], atol=1e-6)
        assert sorted(large[0].tolist()) == list(range(len(pool)))
    assert index.index.ks and max(index.index.ks) <= FAISS_GPU_MAX_K
    strict = _gpu_like(pool, backend="faiss")
    with pytest.raises(ValueError, match="dense_backend='auto'"):
        dense_topk(strict, seeds, FAISS_GPU_MAX_K + 1)
    assert strict.index.ks == []
    blockwise = DenseIndex(pool, backend="blockwise", device="cpu")
    assert blockwise.index is None and not blockwise.uses_faiss(10)


def test_embedding_shards_roundtrip_resume_and_search(tmp_cache):
    emb = get_embedder("hashing", dim=32)
    texts = [f"document {i} about {'photons' if i % 3 else 'football'} number {i % 5}" for i in range(10)]
    shards = embed_to_shards(emb, texts, dtype="float16", shard_docs=3)
    assert isinstance(shards, EmbeddingShards) and shards.shape == (10, 32) and len(shards.files) == 4
    full = emb.embed(texts)
    np.testing.assert_array_equal(shards.to_array("float16"), full.astype(np.float16))
    assert [s for s, _ in shards.iter_blocks(2)] == [0, 2, 3, 5, 6, 8, 9]
    # resume: a lost shard (and manifest) is re-embedded, the others are read back
    (shards.folder / "manifest.json").unlink()
    (shards.folder / shards.files[1]).unlink()
    calls = []
    real = emb.embed
    emb.embed = lambda chunk: calls.append(len(chunk)) or real(chunk)
    again = embed_to_shards(emb, texts, dtype="float16", shard_docs=3)
    assert calls == [3] and again.files == shards.files
    emb.embed = real
    # the blockwise search over the memory-mapped shards equals faiss over the same values
    seeds = full[:2]
    by_shards = dense_topk(DenseIndex(again, device="cpu", block_rows=4), seeds, 10, "mean")
    by_faiss = dense_topk(DenseIndex(again.to_array("float32")), seeds, 10, "mean")
    np.testing.assert_array_equal(by_shards[0], by_faiss[0])
    np.testing.assert_allclose(by_shards[1], by_faiss[1], atol=1e-6)
    with pytest.raises(ValueError, match="dense_backend='auto' or 'blockwise'"):
        DenseIndex(again, backend="faiss")
    # a damaged shard is re-embedded (alone), never used: on resume by its content check, in a
    # complete folder by its digest (finite unit-norm noise passes every content check)
    expected = full.astype(np.float16)
    for damage, manifest in ((lambda a: np.ones_like(a), False), (lambda a: a[::-1].copy(), True)):
        np.save(again.folder / again.files[0], damage(np.asarray(again.shard(0))))
        if not manifest:
            (again.folder / "manifest.json").unlink()
        calls.clear()
        emb.embed = lambda chunk: calls.append(len(chunk)) or real(chunk)
        again = embed_to_shards(emb, texts, dtype="float16", shard_docs=3)
        emb.embed = real
        assert calls == [3]
        np.testing.assert_array_equal(again.to_array("float16"), expected)
    # a manifest without digests (an older folder) is checked by content and given digests
    manifest = json.loads((again.folder / "manifest.json").read_text())
    (again.folder / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "xxh3_128"}))
    embed_to_shards(emb, texts, dtype="float16", shard_docs=3)
    assert json.loads((again.folder / "manifest.json").read_text())["xxh3_128"] == manifest["xxh3_128"]
    with pytest.raises(ValueError, match="retrieval.embedding_dtype"):
        embed_to_shards(emb, texts, dtype="bfloat16")


def test_config_knobs_and_embed_pool(tmp_cache):
    smoke, paper = RetrievalConfig.smoke(), RetrievalConfig.paper()
    assert (smoke.embedding_dtype, smoke.dense_backend) == ("float32", "auto")
    assert (RetrievalConfig.embedded().embedding_dtype, paper.embedding_dtype) == ("float32", "float16")
    texts = ["photons and light", "electrons and charge", "a football match"]
    emb = get_embedder("hashing", dim=smoke.hashing_dim)
    as_array = embed_pool(smoke, emb, texts)
    np.testing.assert_array_equal(as_array, embed_cached(emb, texts))       # float32: unchanged path
    half = embed_pool(RetrievalConfig.smoke(embedding_dtype="float16", embedding_shard_docs=2), emb, texts)
    assert isinstance(half, EmbeddingShards) and half.dtype == "float16"
    index = dense_index_from_config(RetrievalConfig.smoke(dense_backend="blockwise", dense_block_rows=2), as_array)
    assert index.backend == "blockwise" and index.block_rows == 2
    for bad, match in (({"embedding_dtype": "bfloat16"}, "retrieval.embedding_dtype"),
                       ({"embedding_shard_docs": 0}, "retrieval.embedding_shard_docs"),
                       ({"dense_backend": "gpu"}, "retrieval.dense_backend"),
                       ({"dense_block_rows": 0}, "retrieval.dense_block_rows"),
                       ({"dense_backend": "faiss", "embedding_dtype": "float16"}, "needs float32")):
        with pytest.raises(ValueError, match=match):
            RetrievalConfig.smoke(**bad)
