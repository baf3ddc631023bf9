#!/usr/bin/env python
"""SAE training with bfloat16 matmuls (autocast) against float32: the speed ratio, and how far
the trained SAEs move compared with how far another training seed moves them.

    python bench/bench_train_dtype.py --profile embedded      # the embedded caches (CPU), ~12 min
    python bench/bench_train_dtype.py --profile smoke         # tiny model, seconds

``gsae.train_dtype`` / ``finetune.train_dtype`` are the knobs ("auto" in the embedded preset:
bf16 on a CPU with native bf16 matmuls). Both are trained three times on the same data:
float32 seed 0, bfloat16 seed 0 (same batches) and float32 seed 1.

* GSAE (stage 00): held-out L0, FVU and CE loss recovered.
* SSAE grids (stage 03): physics Dense and General (ERM, the profile's lambdas, lr ``--lr``,
  default the embedded recipe gate's pick); each lambda's validation L0 and FVU and its
  patched perplexity on the physics test documents, relative to the GSAE's.

The criterion, fixed before the first run: bf16 is acceptable when, for every metric, the
mean over cells of |bf16 seed 0 - float32 seed 0| is no larger than the mean of
|float32 seed 1 - float32 seed 0|: the precision moves results less than the training seed,
which the statistics already count as noise. Writes bench/results/train_dtype_<profile>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.config import load_profile  # noqa: E402
from ssae_utils.device import cpu_has_native_bf16  # noqa: E402
from ssae_utils.io import write_json_atomic  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
RUNS = (("float32", 0), ("bfloat16", 0), ("float32", 1))


def verdict(cells: list[dict[str, dict[str, float]]], metrics: tuple[str, ...]) -> dict[str, dict[str, float | bool]]:
    """Per metric: mean |bf16 s0 - fp32 s0| (precision) and mean |fp32 s1 - fp32 s0| (seed)."""
    out: dict[str, dict[str, float | bool]] = {}
    for m in metrics:
        precision = statistics.fmean(abs(c["bfloat16_s0"][m] - c["float32_s0"][m]) for c in cells)
        seed = statistics.fmean(abs(c["float32_s1"][m] - c["float32_s0"][m]) for c in cells)
        out[m] = {"precision_change": precision, "seed_change": seed, "ok": precision <= seed}
    return out


def bench_gsae(cfg, world) -> dict:
    from ssae_utils.pipeline.foundation import evaluate_gsae, gsae_training_docs
    from ssae_utils.sae.gsae import train_gsae

    acts = world.store.load([d.text for d in gsae_training_docs(world)], exclude_bos=True,
                            desc="general-pool activations").acts
    cell, seconds = {}, {}
    for dtype, seed in RUNS:
        gcfg = dataclasses.replace(cfg.gsae, train_dtype=dtype, seed=seed)
        t = time.perf_counter()
        sae, info = train_gsae(acts, gcfg, world.model.hook_name, Path(tempfile.mkdtemp(prefix="gsae-")),
                               device=cfg.model.resolved_device)
        seconds[f"{dtype}_s{seed}"] = round(time.perf_counter() - t, 3)
        heldout, _ = evaluate_gsae(world, sae, info)
        cell[f"{dtype}_s{seed}"] = {k: float(heldout[k]) for k in ("l0", "fvu", "ce_loss_recovered")}
        print(f"GSAE {dtype} seed {seed}: {cell[f'{dtype}_s{seed}']} in {seconds[f'{dtype}_s{seed}']} s", flush=True)
    return {"train_s": seconds, "metrics": cell, "speedup": seconds["float32_s0"] / seconds["bfloat16_s0"],
            "verdict": verdict([cell], ("l0", "fvu", "ce_loss_recovered"))}


def bench_ssae(cfg, lr: float) -> dict:
    from ssae_utils.activations import ActivationStore
    from ssae_utils.data.corpora import build_corpora
    from ssae_utils.model.registry import load_model
    from ssae_utils.pipeline import finetune as ft
    from ssae_utils.pipeline import recipe_gate
    from ssae_utils.pipeline.foundation import load_saved_gsae
    from ssae_utils.pipeline.upstream import gsae_input_space
    from ssae_utils.sae.finetune import finetune

    import ssae_utils.results as results

    # the selections and the GSAE of the committed run are inputs here, whatever train_dtype
    # (or any other knob) that run recorded: this bench retrains from them in both dtypes
    results.check_lineage = lambda *args, **kwargs: None
    cfg = recipe_gate.with_lr(cfg, lr)
    selections = ft.load_selections(cfg)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    gsae, setup = load_saved_gsae(cfg)
    act_scale, threshold = gsae_input_space(setup.gsae.training, cfg.gsae.outlier_norm_factor)
    store = ActivationStore(model, cfg.activations)
    batch = cfg.activations.batch_size
    domain = "physics" if "physics" in selections else next(iter(selections))
    evals = {split: ft.eval_set(store, ce_docs, stats_docs, threshold, f"{domain} {split}")
             for split, (ce_docs, stats_docs) in ft.split_eval_documents(cfg, domain, corpora, store).items()
             if split in ("val", "test")}
    gsae_ppl = ft.evaluate(model, {"gsae": gsae}, evals["test"], threshold, batch, "GSAE test")["gsae"]["ppl"]
    items = {(it.strategy, it.seed): it for it in ft.domain_grids(cfg, domain, selections, corpora) if it.tilt == 0}
    cells: dict[tuple[str, float], dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for strategy in ("dense", "general"):
        item = items[(strategy, 0)]
        on_disk = store.rows([d.text for d in item.train_docs], desc=f"{strategy} activations")
        keep = torch.ones(len(on_disk), dtype=torch.bool) if threshold is None else on_disk.norms() <= threshold.limit
        acts = on_disk.subset(keep)
        for dtype, seed in RUNS:
            fcfg = dataclasses.replace(item.fcfg, compute_dtype=dtype, seed=seed, checkpoint_steps=())
            t = time.perf_counter()
            result = finetune(gsae, acts, fcfg, act_scale, progress=False)
            seconds[f"{strategy}_{dtype}_s{seed}"] = round(time.perf_counter() - t, 3)
            saes = dict(zip((f"lambda_{lam:g}" for lam in fcfg.l1_coefficients), result.saes(model.hook_name)))
            val = ft.evaluate(model, saes, evals["val"], threshold, batch, "val", patched_ce=False, clean=False)
            test = ft.evaluate(model, saes, evals["test"], threshold, batch, f"{strategy} {dtype} s{seed} test", clean=False)
            for lam in fcfg.l1_coefficients:
                name = f"lambda_{lam:g}"
                cells.setdefault((strategy, lam), {})[f"{dtype}_s{seed}"] = {
                    "val_l0": val[name]["l0"], "val_fvu": val[name]["fvu"], "test_ppl_rel_gsae": test[name]["ppl"] / gsae_ppl}
            print(f"{strategy} {dtype} seed {seed}: {seconds[f'{strategy}_{dtype}_s{seed}']} s", flush=True)
    speedup = statistics.fmean(seconds[f"{s}_float32_s0"] / seconds[f"{s}_bfloat16_s0"] for s in ("dense", "general"))
    return {"domain": domain, "lr": lr, "steps": {s: items[(s, 0)].fcfg.steps for s in ("dense", "general")},
            "train_s": seconds, "speedup": speedup,
            "cells": [{"strategy": s, "lambda": lam, **c} for (s, lam), c in cells.items()],
            "verdict": verdict(list(cells.values()), ("val_l0", "val_fvu", "test_ppl_rel_gsae"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--lr", type=float, default=1e-3, help="the sweep's lr (the recipe gate's pick)")
    parser.add_argument("--part", choices=("all", "gsae", "ssae"), default="all")
    args = parser.parse_args()
    cfg = load_profile(args.profile)
    out: dict = {"profile": args.profile, "machine": {"processor": platform.processor() or platform.machine(),
                                                      "native_bf16": cpu_has_native_bf16(),
                                                      "torch_threads": torch.get_num_threads()}}
    if args.part in ("all", "gsae"):
        from ssae_utils.pipeline.foundation import load_world
        out["gsae"] = bench_gsae(cfg, load_world(cfg))
    if args.part in ("all", "ssae"):
        out["ssae"] = bench_ssae(cfg, args.lr)
    out["ok"] = all(v["ok"] for part in ("gsae", "ssae") if part in out for v in out[part]["verdict"].values())
    OUT.mkdir(exist_ok=True)
    path = OUT / f"train_dtype_{args.profile}.json"
    if args.part != "all" and path.exists():   # one part: keep the other part's last result
        import json
        out = {**json.loads(path.read_text()), **out}
        out["ok"] = all(v["ok"] for part in ("gsae", "ssae") if part in out for v in out[part]["verdict"].values())
    write_json_atomic(path, out)
    print({part: out[part]["verdict"] for part in ("gsae", "ssae") if part in out}, "ok:", out["ok"])


if __name__ == "__main__":
    main()
