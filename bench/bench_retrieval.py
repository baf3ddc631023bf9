#!/usr/bin/env python
"""Retrieval speed: BM25 backends on one seed-set query, faiss top-k, MiniLM throughput.

    python bench/bench_retrieval.py --profile smoke        # synthetic corpora, seconds
    python bench/bench_retrieval.py --profile embedded     # the 30.5k-doc pool + 100k Zipfian, ~5 min
    python bench/bench_retrieval.py --section streaming_bm25 --synthetic-docs 100000   # ~3 min

All backends run in the same process on the same tokenized corpus and query, so the ratios
do not depend on the machine. BM25: ``sparse`` (ours, scipy CSR, identical scores) vs
``rank_bm25`` (the reference, BM25Okapi) vs ``bm25s`` (if installed). The query is the whole
physics seed set, concatenated (the default query mode). rank-bm25's cost is linear in the
number of query tokens; on the 100k corpus it is timed on a 200-token query and the full
query's time is extrapolated (marked as such). Dense: exact faiss IndexFlatIP top-k on
unit vectors (random, the same size as the pool). MiniLM: docs/s on a sample of pool
documents, at 256 and 128 word pieces. Writes bench/results/retrieval_<profile>.json
(or --out).

``--section streaming_bm25``: the streaming BM25 backend (bm25_stream.py, the paper
profile's) against the sparse one on a synthetic Zipfian corpus of texts, both starting from
the same in-memory texts: peak memory above the texts (tracemalloc, which sees Python objects
and numpy/scipy buffers; a separate run from the timed one) and wall time of building the
index and scoring one seed-set query, as ratios. Writes
bench/results/retrieval_streaming_bm25.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.data import DataConfig, build_corpora  # noqa: E402
from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.retrieval import (DenseIndex, available_bm25_backends, build_bm25,  # noqa: E402
                                  dense_topk, get_embedder, tokenize_all)


def timed(fn, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def backends():
    names = ["sparse", "rank_bm25"]
    try:
        import bm25s  # noqa: F401
        names.append("bm25s")
    except ImportError:
        pass
    return [n for n in names if n in available_bm25_backends()]


def bench_bm25(corpus_tokens, query, label, rank_full=True, probe_tokens=200):
    rows = {}
    probe = query[:probe_tokens]
    ref_scores = None
    for name in backends():
        index, t_index = timed(lambda: build_bm25(corpus_tokens, name))
        row = {"index_s": round(t_index, 3)}
        if name == "rank_bm25":
            probe_scores, t_probe = timed(lambda: index.score(probe))
            row["probe_query_tokens"] = len(probe)
            row["probe_query_s"] = round(t_probe, 3)
            if rank_full:
                ref_scores, t_full = timed(lambda: index.score(query))
                row["query_s"] = round(t_full, 3)
            else:
                row["query_s_extrapolated"] = round(t_probe * len(query) / len(probe), 1)
            ref_probe = probe_scores
        else:
            scores, t_q = timed(lambda: index.score(query), repeat=5)
            row["query_s"] = round(t_q, 4)
            row["probe_scores"] = index.score(probe)
            row["scores"] = scores
        rows[name] = row
        del index
    # score agreement with the reference
    for name, row in rows.items():
        if "probe_scores" in row:
            row["max_abs_diff_vs_rank_bm25_probe"] = float(np.abs(row.pop("probe_scores") - ref_probe).max())
            s = row.pop("scores")
            if ref_scores is not None:
                row["max_abs_diff_vs_rank_bm25"] = float(np.abs(s - ref_scores).max())
    ref = rows["rank_bm25"].get("query_s") or rows["rank_bm25"]["query_s_extrapolated"]
    for name, row in rows.items():
        if name != "rank_bm25":
            row["speedup_vs_rank_bm25"] = round(ref / max(row["query_s"], 1e-9), 1)
    print(f"\nBM25, {label}: {len(corpus_tokens):,} docs, query {len(query):,} tokens "
          f"({len(set(query)):,} unique)")
    for name, row in rows.items():
        print(f"  {name:10s} {row}")
    return {"docs": len(corpus_tokens), "query_tokens": len(query),
            "query_unique": len(set(query)), "backends": rows}


def zipf_corpus(n_docs, doc_len, vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(vocab_size)], dtype=object)
    p = 1.0 / np.arange(1, vocab_size + 1) ** 1.1
    p /= p.sum()
    ids = rng.choice(vocab_size, size=(n_docs, doc_len), p=p)
    return [list(vocab[row]) for row in ids], list(vocab[rng.choice(vocab_size, size=4000, p=p)])


def bench_dense(n, dim, k_values, label):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    seeds = x[:100] + 0.1 * rng.normal(size=(100, dim)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    index, t_index = timed(lambda: DenseIndex(x))
    out = {"docs": n, "dim": dim, "index_s": round(t_index, 4), "on_gpu": index.on_gpu}
    for mode in ("mean", "per_seed_max"):
        for k in k_values:
            _, t = timed(lambda: dense_topk(index, seeds, k, mode), repeat=3)
            out[f"{mode}_top{k}_s"] = round(t, 4)
    print(f"\ndense ({label}): {out}")
    return out


def bench_minilm(texts, n_sample):
    """MiniLM throughput on a random sample of pool documents: float32 at 256 and 128 word
    pieces, and bfloat16 at 128 (the embedded setting where the CPU has native bf16), with
    the cosine between the bf16 and float32 vectors."""
    import random

    try:
        fp32 = get_embedder("minilm", batch_size=64, max_tokens=256, dtype="float32")
        fp32.embed(texts[:2])
    except ImportError as err:
        print(f"\nMiniLM skipped: {err}")
        return None
    sample = random.Random(0).sample(list(texts), min(n_sample, len(texts)))
    out = {"sample_docs": len(sample)}
    vectors = {}
    for label, emb, max_tokens in (("float32_256", fp32, 256), ("float32_128", fp32, 128),
                                   ("bfloat16_128", get_embedder("minilm", batch_size=64, max_tokens=128, dtype="bfloat16"), 128)):
        emb.max_tokens = max_tokens
        emb.embed(texts[:2])  # load before timing
        vectors[label], t = timed(lambda: emb.embed(sample))
        out[f"docs_per_s_{label}"] = round(len(sample) / t, 1)
        out[f"truncated_{label}"] = emb.n_truncated
        out[f"pool_minutes_{label}"] = round(len(texts) / (len(sample) / t) / 60, 1)
    cos = (vectors["bfloat16_128"] * vectors["float32_128"]).sum(1)
    out["bf16_vs_fp32_cosine_mean"] = round(float(cos.mean()), 5)
    out["bf16_vs_fp32_cosine_min"] = round(float(cos.min()), 5)
    out["bf16_speedup"] = round(out["docs_per_s_bfloat16_128"] / out["docs_per_s_float32_128"], 2)
    print(f"\nMiniLM (all-MiniLM-L6-v2, torch threads {__import__('torch').get_num_threads()}): {out}")
    return out


def zipf_texts(n_docs, doc_len, vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab_size + 1) ** 1.1
    p /= p.sum()
    ids = rng.choice(vocab_size, size=(n_docs, doc_len), p=p)
    texts = [" ".join(f"w{i}" for i in row) for row in ids]
    query = [" ".join(f"w{i}" for i in rng.choice(vocab_size, size=200, p=p)) for _ in range(20)]
    return texts, query                              # 20 seed documents, 4,000 query tokens


def _run_bm25(backend, texts, seeds, spill_dir):
    from ssae_utils.retrieval import RetrievalConfig, bm25_from_config, query_scores

    cfg = RetrievalConfig.smoke(bm25_backend=backend)
    start = time.perf_counter()
    index = bm25_from_config(cfg, texts, spill_dir=spill_dir)
    t_index = time.perf_counter() - start
    start = time.perf_counter()
    scores = query_scores(index, seeds, "concatenated")
    t_query = time.perf_counter() - start
    start = time.perf_counter()
    scores_max = query_scores(index, seeds, "per_seed_max")
    t_max = time.perf_counter() - start
    return index, scores, scores_max, t_index, t_query, t_max


def _peak_bytes(fn):
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del out
    return peak


def bench_streaming_bm25(n_docs, doc_len=80, vocab_size=50_000):
    import tempfile

    texts, seeds = zipf_texts(n_docs, doc_len, vocab_size)
    out = {"docs": n_docs, "words_per_doc": doc_len, "vocab_size": vocab_size,
           "seed_docs": len(seeds), "query_tokens": sum(len(s.split()) for s in seeds)}
    with tempfile.TemporaryDirectory() as spill:
        rows = {}
        for backend in ("sparse", "streaming"):
            index, scores, scores_max, t_index, t_query, t_max = _run_bm25(backend, texts, seeds, spill)
            rows[backend] = {"index_s": round(t_index, 2), "query_s": round(t_query, 3),
                             "per_seed_max_query_s": round(t_max, 3),
                             "index_plus_query_s": round(t_index + t_query, 2),
                             "scores": scores, "scores_max": scores_max}
            del index
        for backend in ("sparse", "streaming"):
            peak = _peak_bytes(lambda: _run_bm25(backend, texts, seeds, spill)[:3])
            rows[backend]["peak_mb_above_texts"] = round(peak / 2**20, 1)
    ref, ref_max = rows["sparse"].pop("scores"), rows["sparse"].pop("scores_max")
    s, s_max = rows["streaming"].pop("scores"), rows["streaming"].pop("scores_max")
    scale = max(float(np.abs(ref).max()), 1e-300)
    out["max_rel_diff_streaming_vs_sparse"] = float(np.abs(s - ref).max() / scale)
    out["max_rel_diff_per_seed_max"] = float(np.abs(s_max - ref_max).max() / max(float(np.abs(ref_max).max()), 1e-300))
    out["backends"] = rows
    out["memory_ratio_sparse_over_streaming"] = round(rows["sparse"]["peak_mb_above_texts"]
                                                      / rows["streaming"]["peak_mb_above_texts"], 2)
    out["time_ratio_streaming_over_sparse"] = round(rows["streaming"]["index_plus_query_s"]
                                                    / rows["sparse"]["index_plus_query_s"], 2)
    out["query_time_ratio_streaming_over_sparse"] = round(rows["streaming"]["query_s"] / rows["sparse"]["query_s"], 1)
    print(f"\nstreaming vs sparse BM25, {n_docs:,} synthetic docs x {doc_len} words: {out}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "embedded"), default="smoke")
    parser.add_argument("--minilm-sample", type=int, default=512)
    parser.add_argument("--synthetic-docs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--section", choices=("all", "streaming_bm25"), default="all")
    args = parser.parse_args()

    if args.section == "streaming_bm25":
        result = {"section": "streaming_bm25", "bm25_streaming": bench_streaming_bm25(args.synthetic_docs)}
        out = args.out or Path(__file__).resolve().parent / "results" / "retrieval_streaming_bm25.json"
        write_json_atomic(out, result)
        print(f"\nwrote {out}")
        return

    cfg = DataConfig.smoke() if args.profile == "smoke" else DataConfig.embedded()
    corpora = build_corpora(cfg)
    pool = [d.text for d in corpora["general_pool"]]
    seed = [d.text for d in corpora["physics_seed"]]
    (pool_tokens, t_tok) = timed(lambda: tokenize_all(pool))
    query = [t for s in tokenize_all(seed) for t in s]
    print(f"tokenized {len(pool):,} pool docs in {t_tok:.2f} s")
    result = {"profile": args.profile, "tokenize_pool_s": round(t_tok, 2),
              "bm25_pool": bench_bm25(pool_tokens, query, "general pool", rank_full=True)}
    del pool_tokens
    n_syn = args.synthetic_docs if args.profile == "embedded" else 2_000
    syn, syn_query = zipf_corpus(n_syn, 80, 50_000)
    result["bm25_zipf"] = bench_bm25(syn, syn_query, f"synthetic Zipfian {n_syn:,} x 80 words",
                                     rank_full=n_syn <= 5_000)
    del syn
    result["dense_pool_size"] = bench_dense(len(pool), 384, (1000, len(pool)), "pool-sized, 384-d")
    result["dense_100k"] = bench_dense(n_syn, 384, (1000,), f"{n_syn:,}, 384-d")
    if args.profile == "embedded":
        result["minilm"] = bench_minilm(pool, args.minilm_sample)
    out = args.out or Path(__file__).resolve().parent / "results" / f"retrieval_{args.profile}.json"
    write_json_atomic(out, result)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
