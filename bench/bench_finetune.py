#!/usr/bin/env python
"""SSAE finetuning speed: our stacked trainer vs SAELens' SAETrainer, and TERM's overhead.

    python bench/bench_finetune.py                    # d_in 640, d_sae 4096, batch 4096 (the embedded GSAE's size)
    python bench/bench_finetune.py --d-sae 512 --batch 512 --steps 5   # seconds

All variants train the same SAE size on the same activations in one process, so the ratios
do not depend on the machine:

- ``saelens``: ``StandardTrainingSAE`` + ``SAETrainer`` (what trains the GSAE in stage 00),
  fed batches from memory; its norm-scaling estimate is replaced by a fixed factor so that
  only training steps are timed.
- ``ours_erm``: ``ssae_utils.sae.finetune.finetune`` with one lambda.
- ``ours_term``: the same with TERM (t = 500, tilt over tokens): the TERM overhead.
- ``ours_grid``: a grid of ``--grid`` lambdas trained together; reported per SAE, it says what
  stacking saves over training the grid one lambda at a time.

Steps are timed after a warm-up step. Writes bench/results/finetune.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig, StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.sae.finetune import FinetuneConfig, finetune  # noqa: E402
from ssae_utils.sae.term import TiltConfig  # noqa: E402


def endless(acts: torch.Tensor, batch: int):
    while True:
        for start in range(0, acts.shape[0] - batch + 1, batch):
            yield acts[start : start + batch]


def time_saelens(acts, d_sae, batch, steps, scale):
    d_in = acts.shape[1]

    def run(n_steps):
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=1.0,
                                                            normalize_activations="none", device="cpu"))
        cfg = SAETrainerConfig(total_training_samples=n_steps * batch, train_batch_size_samples=batch, lr=5e-5,
                               lr_end=5e-5, lr_warm_up_steps=0, lr_decay_steps=0, device="cpu",
                               n_batches_for_norm_estimate=1, dead_feature_window=1000, feature_sampling_window=1000)
        trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=endless(acts * scale, batch))
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start

    run(1)  # warm-up
    return (run(steps + 1) - run(1)) / steps  # seconds per step, trainer setup cancelled out


def time_ours(gsae, acts, lambdas, batch, steps, scale, tilt):
    def run(n_steps):
        cfg = FinetuneConfig(l1_coefficients=lambdas, steps=n_steps, batch_size=batch, lr_decay_steps=0,
                             shuffle_buffer_batches=None, tilt=tilt, log_every=10_000)
        start = time.perf_counter()
        finetune(gsae, acts, cfg, scale, progress=False)
        return time.perf_counter() - start

    run(1)
    return (run(steps + 1) - run(1)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-in", type=int, default=640)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.batch * 4
    acts = torch.randn(n, args.d_in) * 100 + 1000          # raw-scale stand-in for residuals
    scale = (args.d_in**0.5) / float(acts.norm(dim=-1).mean())
    gsae = StandardSAE(StandardSAEConfig(d_in=args.d_in, d_sae=args.d_sae))
    with torch.no_grad():
        gsae.W_enc.div_(scale)                              # a folded SAE that reads raw activations
        gsae.W_dec.mul_(1 / scale)

    per_step = {
        "saelens": time_saelens(acts, args.d_sae, args.batch, args.steps, scale),
        "ours_erm": time_ours(gsae, acts, (1.0,), args.batch, args.steps, scale, TiltConfig()),
        "ours_term": time_ours(gsae, acts, (1.0,), args.batch, args.steps, scale, TiltConfig(t=500.0)),
        "ours_grid": time_ours(gsae, acts, tuple(float(x) for x in range(1, args.grid + 1)), args.batch, args.steps, scale, TiltConfig()),
    }
    tokens_per_s = {k: args.batch / v for k, v in per_step.items()}
    tokens_per_s["ours_grid_per_sae"] = tokens_per_s["ours_grid"] * args.grid
    result = {
        "d_in": args.d_in, "d_sae": args.d_sae, "batch": args.batch, "steps": args.steps, "grid": args.grid,
        "threads": torch.get_num_threads(),
        "seconds_per_step": per_step,
        "tokens_per_s": tokens_per_s,
        "ratio_ours_vs_saelens": per_step["saelens"] / per_step["ours_erm"],
        "term_overhead": per_step["ours_term"] / per_step["ours_erm"] - 1,
        "grid_speedup_vs_one_at_a_time": args.grid * per_step["ours_erm"] / per_step["ours_grid"],
    }
    out = Path(__file__).resolve().parent / "results" / "finetune.json"
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
