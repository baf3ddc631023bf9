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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=512, help="size of the synthetic shard")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shard.acts.npy"
        n = args.mb * (1 << 20) // (640 * 4)
        np.save(path, np.random.default_rng(0).standard_normal((n, 640), dtype=np.float32))
        size = os.path.getsize(path)
        read = best_of(lambda: np.array(np.load(path, mmap_mode="r")), args.repeats)  # page cache warm after the first
        xxh = best_of(lambda: file_digest(path), args.repeats)
        sha = best_of(lambda: file_digest(path, "sha256"), args.repeats)
    gb = size / 1e9
    # stage 00 (embedded): 250k tokens x 640 float32 = 0.64 GB of shards, a ~9 min stage
    stage00_bytes, stage00_s = 250_000 * 640 * 4, 546.0
    out = {"bytes": size, "read_s": read, "xxh3_128_s": xxh, "sha256_s": sha,
           "read_gb_per_s": gb / read, "xxh3_gb_per_s": gb / xxh, "sha256_gb_per_s": gb / sha,
           "xxh3_over_read": xxh / read, "sha256_over_read": sha / read,
           "stage00_embedded_xxh3_share": stage00_bytes / (gb / xxh * 1e9) / stage00_s}
    for k, v in out.items():
        print(f"{k:32s} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "integrity.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'integrity.json'}")


if __name__ == "__main__":
    main()
