#!/usr/bin/env python
"""What checking cached files costs: xxh3-128 (what new cache entries record) and sha256
(older entries) against reading the same file into memory, in the same run.

A stage reads each activation shard it uses at least once (into memory or through a
memory map); verifying it hashes the file once more. So the ratio hash time / read time
bounds the overhead on the reading part of a stage; next to the stage's compute (an LM
forward at ~1 ms per token on 2 cores, 8 KB of float32 activations per token of a
d_model-2048 model, 2.5 KB at 640) it is far smaller. The script also prints that bound
for stage 00 of the embedded profile (250k GSAE training tokens cached at d_model 640).

    python bench/bench_integrity.py --mb 512

``--artifacts`` (default on) also times the read-time checks of the other cached artifacts at
embedded-profile size, each against the read it comes with: the pool embeddings (30.5k x 384
float32 .npy: digest vs np.load + shape/finiteness/norm checks), float16 embedding shards,
the token-count map (digest + non-negative-int check vs json.loads, 100k and 1M documents),
a corpora JSONL split (digest vs load_jsonl, 30k documents) and autointerp cache entries
(schema check vs the whole get()). Shares of a stage use the embedded profile's cached-run
stage times in results/embedded/ (stage 01: ~9.5 s with every cache warm).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ssae_utils.integrity import file_digest  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def artifact_costs(tmp: Path, repeats: int) -> dict:
    """Read-time checks of embeddings, token counts, corpora splits and autointerp entries."""
    import json as _json

    from ssae_utils.autointerp.cache import ResponseCache, _check_schema
    from ssae_utils.autointerp.client import LLMRequest, LLMResponse
    from ssae_utils.data.documents import Document, load_jsonl, save_jsonl
    from ssae_utils.retrieval.embedders import _check_array
    from ssae_utils.retrieval.emb_shards import _check_shard
    from ssae_utils import token_counts as tc

    rng = np.random.default_rng(0)
    out: dict = {}
    # pool embeddings, embedded profile: 30.5k docs x 384 (MiniLM) float32
    emb = rng.standard_normal((30_500, 384), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    path = tmp / "pool.npy"
    np.save(path, emb)
    read = best_of(lambda: _check_array(np.load(path), *emb.shape, path), repeats)
    digest = best_of(lambda: file_digest(path), repeats)
    out["embeddings_npy"] = {"bytes": path.stat().st_size, "read_and_content_checks_s": read, "digest_s": digest,
                             "digest_over_read": digest / read, "share_of_stage01_cached_9.5s": digest / 9.5}
    shard = tmp / "shard.npy"
    np.save(shard, emb.astype(np.float16))
    read = best_of(lambda: np.asarray(np.load(shard, mmap_mode="r"), dtype=np.float32), repeats)
    content = best_of(lambda: _check_shard(np.load(shard, mmap_mode="r"), *emb.shape, "float16", "s"), repeats)
    digest = best_of(lambda: file_digest(shard), repeats)
    out["embedding_shard_float16"] = {"bytes": shard.stat().st_size, "read_s": read, "digest_s": digest,
                                      "content_check_s (legacy manifests, once)": content, "digest_over_read": digest / read}
    # token counts: the map a stage reads whole
    for n in (100_000, 1_000_000):
        counts = {f"{i:020x}": int(c) for i, c in enumerate(rng.integers(1, 2000, n))}
        f = tmp / f"counts{n}.json"
        tc._write(f, counts)
        read = best_of(lambda: _json.loads(f.read_bytes()), repeats)
        checked = best_of(lambda: tc._checked(f.read_bytes()), repeats)
        out[f"token_counts_{n}"] = {"read_s": read, "read_and_checks_s": checked, "checks_over_read": checked / read - 1,
                                    "checks_share_of_stage01_cached_9.5s": (checked - read) / 9.5}
    # a corpora split: 30k documents of ~250 words
    words = np.array(["photon", "the", "of", "quark", "field", "energy", "model", "data"])
    docs = [Document(f"d{i}", " ".join(words[rng.integers(0, len(words), 250)]), "general") for i in range(30_000)]
    split = tmp / "general_pool.jsonl"
    save_jsonl(docs, split)
    read = best_of(lambda: load_jsonl(split), repeats)
    digest = best_of(lambda: file_digest(split), repeats)
    out["corpora_jsonl_split"] = {"bytes": split.stat().st_size, "load_jsonl_s": read, "digest_s": digest,
                                  "digest_over_read": digest / read}
    # autointerp: one cached answer
    cache = ResponseCache(tmp / "responses")
    req = LLMRequest("m", "system " * 200, "user " * 2000, 400)
    cache.put(req, LLMResponse("an explanation " * 10, 3000, 40, "end_turn"))
    entry = _json.loads(cache.path(req).read_text())
    get = best_of(lambda: [cache.get(req) for _ in range(1000)], repeats) / 1000
    schema = best_of(lambda: [_check_schema(entry) for _ in range(1000)], repeats) / 1000
    out["autointerp_entry"] = {"get_s": get, "schema_check_s": schema, "schema_over_get": schema / get}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=512, help="size of the synthetic shard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-artifacts", dest="artifacts", action="store_false",
                        help="only the activation-shard measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shard.acts.npy"
        n = args.mb * (1 << 20) // (640 * 4)
        np.save(path, np.random.default_rng(0).standard_normal((n, 640), dtype=np.float32))
        size = os.path.getsize(path)
        read = best_of(lambda: np.array(np.load(path, mmap_mode="r")), args.repeats)  # page cache warm after the first
        xxh = best_of(lambda: file_digest(path), args.repeats)
        sha = best_of(lambda: file_digest(path, "sha256"), args.repeats)
        path.unlink()
        artifacts = artifact_costs(Path(tmp), args.repeats) if args.artifacts else None
    gb = size / 1e9
    # stage 00 (embedded): 250k tokens x 640 float32 = 0.64 GB of shards, a ~9 min stage
    stage00_bytes, stage00_s = 250_000 * 640 * 4, 546.0
    out = {"bytes": size, "read_s": read, "xxh3_128_s": xxh, "sha256_s": sha,
           "read_gb_per_s": gb / read, "xxh3_gb_per_s": gb / xxh, "sha256_gb_per_s": gb / sha,
           "xxh3_over_read": xxh / read, "sha256_over_read": sha / read,
           "stage00_embedded_xxh3_share": stage00_bytes / (gb / xxh * 1e9) / stage00_s}
    for k, v in out.items():
        print(f"{k:32s} {v:.4g}")
    if artifacts is not None:
        out["artifacts"] = artifacts
        for name, row in artifacts.items():
            print(name, "  ".join(f"{k}={v:.3g}" for k, v in row.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "integrity.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'integrity.json'}")


if __name__ == "__main__":
    main()
