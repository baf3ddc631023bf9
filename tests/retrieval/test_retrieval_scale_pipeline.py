"""Stage 01 with the paper preset's scale knobs (streaming BM25, float16 embedding shards,
blockwise dense search) on the smoke profile selects what the default backends select."""

from __future__ import annotations

import numpy as np

from ssae_utils.config import load_profile
from ssae_utils.pipeline.retrieval import run_retrieval
from ssae_utils.paths import cache_root

SCALE = {"retrieval.bm25_backend": "streaming", "retrieval.bm25_stream_batch_docs": 37,
         "retrieval.embedding_dtype": "float16", "retrieval.embedding_shard_docs": 50,
         "retrieval.dense_backend": "blockwise", "retrieval.dense_block_rows": 16}


def test_scale_knobs_select_the_same_documents(tmp_cache):
    default = run_retrieval(load_profile("smoke")).domains
    scaled = run_retrieval(load_profile("smoke", SCALE)).domains
    assert list((cache_root() / "embeddings" / "hashing").glob("shards-*/shard_00000.npy"))
    assert not any((cache_root() / "bm25_stream").iterdir())          # the spill folder is removed
    for name, dom in default.items():
        other = scaled[name]
        for strategy in ("bm25", "general", "seed_only"):
            assert other.selections[strategy].doc_ids == dom.selections[strategy].doc_ids, (name, strategy)
        np.testing.assert_allclose(other.selections["bm25"].scores, dom.selections["bm25"].scores, rtol=1e-9)
        assert other.bm25_query_modes == dom.bm25_query_modes
        # float16 storage moves a cosine by <= ~1e-3: the dense selection may differ at its margin
        a, b = set(dom.selections["dense"].doc_ids), set(other.selections["dense"].doc_ids)
        assert len(a & b) / len(a | b) >= 0.8
