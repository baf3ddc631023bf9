#!/usr/bin/env python
"""Activation caching throughput: stopping at the hooked layer vs a full forward pass.

    python bench/bench_activation_caching.py                      # smoke model, seconds
    python bench/bench_activation_caching.py --profile embedded   # Gemma 3 270M, ~2 min

Both variants run in the same process on the same contexts, so the result is a ratio that
does not depend on the machine: ``ours`` is ``HookedLM.resid_at_hook`` (layers 0..L only),
``baseline`` is TransformerLens ``run_with_cache`` with a names filter, which still runs every
layer and the unembedding. Writes bench/results/activation_caching_<profile>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.activations import chunk_token_ids, encode  # noqa: E402
from ssae_utils.config import load_profile  # noqa: E402
from ssae_utils.data.corpora import build_corpora  # noqa: E402
from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.model.registry import load_model  # noqa: E402


def contexts_for(model, texts, n_contexts):
    rows = []
    for text in texts:
        for piece in chunk_token_ids(encode(model.tokenizer, text), model.bos_token_id, model.context_length):
            if len(piece) == model.context_length:
                rows.append(piece)
            if len(rows) == n_contexts:
                return torch.tensor(rows)
    raise SystemExit(f"only {len(rows)} full contexts available, {n_contexts} requested")


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--contexts", type=int, default=None, help="contexts per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_profile(args.profile)
    model = load_model(cfg.model)
    n = args.contexts or (64 if args.profile == "smoke" else 32)
    tokens = contexts_for(model, build_corpora(cfg.data).texts("general_heldout"), n)
    batch = cfg.activations.batch_size

    def ours():
        for s in range(0, n, batch):
            model.resid_at_hook(tokens[s : s + batch])

    def baseline():
        for s in range(0, n, batch):
            model.tl.run_with_cache(tokens[s : s + batch], names_filter=model.hook_name)

    # same activations from both paths before timing anything
    _, cache = model.tl.run_with_cache(tokens[:2], names_filter=model.hook_name)
    max_diff = float((cache[model.hook_name] - model.resid_at_hook(tokens[:2])).abs().max())
    ours(), baseline()  # warm-up
    t_ours = best_of(ours, args.repeats)
    t_base = best_of(baseline, args.repeats)
    n_tokens = tokens.numel()
    result = {
        "profile": args.profile,
        "model": model.name,
        "hook": model.hook_name,
        "n_layers": model.n_layers,
        "tokens": n_tokens,
        "ours_tokens_per_s": n_tokens / t_ours,
        "full_forward_tokens_per_s": n_tokens / t_base,
        "speedup_ratio": t_base / t_ours,
        "max_abs_diff": max_diff,
        "threads": torch.get_num_threads(),
    }
    out = Path(__file__).resolve().parent / "results" / f"activation_caching_{args.profile}.json"
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
