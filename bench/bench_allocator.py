#!/usr/bin/env python
"""What the kernel allocator settings (ssae_utils/runtime.py) save in SSAE finetuning.

    python bench/bench_allocator.py                   # the embedded grid: 4 lambdas, batch 1024, d 640 -> 4096
    python bench/bench_allocator.py --steps 3 --d-sae 1024   # seconds

Times the same stacked finetuning steps in two fresh processes, one with glibc's default
malloc and one with ``ALLOCATOR_ENV`` (glibc reads it only at start-up, hence the
subprocesses), on identical synthetic activations. Writes bench/results/allocator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.runtime import ALLOCATOR_ENV  # noqa: E402

CHILD = r"""
import json, sys, time, resource, torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from ssae_utils.sae.finetune import FinetuneConfig, finetune
d_in, d_sae, batch, k, steps = map(int, sys.argv[1:6])
torch.manual_seed(0)
sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, device="cpu"))
with torch.no_grad():
    sae.W_enc.normal_(0, 0.02); sae.W_dec.copy_(sae.W_enc.T); sae.b_enc.fill_(-0.1)
acts = torch.randn(20 * batch, d_in)
def run(n):
    cfg = FinetuneConfig(l1_coefficients=tuple(0.5 + 0.25 * i for i in range(k)), steps=n, batch_size=batch,
                         lr=1e-3, lr_decay_steps=0, shuffle_buffer_batches=None, log_every=10**6)
    start = time.perf_counter(); finetune(sae, acts, cfg, 1.0, progress=False); return time.perf_counter() - start
run(2)
faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
per_step = (run(steps + 2) - run(2)) / steps
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
print(json.dumps({"s_per_step": per_step, "minor_page_faults": faults,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(args: argparse.Namespace, tuned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    if tuned:
        env.update(ALLOCATOR_ENV)
    argv = [sys.executable, "-c", CHILD, *map(str, (args.d_in, args.d_sae, args.batch, args.grid, args.steps))]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-in", type=int, default=640)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--grid", type=int, default=4, help="lambdas trained together")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    default, tuned = measure(args, tuned=False), measure(args, tuned=True)
    result = {"config": vars(args), "threads": os.cpu_count(), "glibc_default": default, "allocator_env": tuned,
              "env": ALLOCATOR_ENV, "speedup": default["s_per_step"] / tuned["s_per_step"]}
    for name, r in (("glibc default", default), ("ALLOCATOR_ENV", tuned)):
        print(f"{name:>14}: {r['s_per_step']:.3f} s/step, {r['minor_page_faults']:,} minor page faults, peak {r['peak_rss_mb']:.0f} MB")
    print(f"speed-up {result['speedup']:.2f}x")
    write_json_atomic(REPO / "bench" / "results" / "allocator.json", result)


if __name__ == "__main__":
    main()
