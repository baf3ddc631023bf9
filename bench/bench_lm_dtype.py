#!/usr/bin/env python
"""The LM forward in bfloat16 against float32: how far the clean and the patched CE move, and
the speed ratio, on the same contexts in one run.

    python bench/bench_lm_dtype.py --profile embedded   # Gemma 3 270M + the cached GSAE (CPU)
    python bench/bench_lm_dtype.py --profile smoke      # tiny model, seconds

``model.dtype`` is the knob (float32 by default in every profile). The number that decides it
is the change in *patched CE relative to clean CE* (what relative perplexity is made of), and
its spread over contexts: bf16 is acceptable where |mean paired difference| of the patched CE
stays below ``--tolerance`` nats (default 0.01, i.e. 1% perplexity). The SAE stays in float32
either way; the residual it reads is cast. Writes bench/results/lm_dtype_<profile>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.activations import ActivationStore  # noqa: E402
from ssae_utils.config import load_profile  # noqa: E402
from ssae_utils.data.corpora import build_corpora  # noqa: E402
from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.model.registry import load_model  # noqa: E402
from ssae_utils.pipeline.foundation import load_saved_gsae  # noqa: E402
from ssae_utils.sae.evaluation import _valid_targets, sae_splice  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def per_context_ce(model, tokens, lengths, splice, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(clean CE per context, patched CE per context, seconds) in float64."""
    clean, patched = [], []
    t = time.perf_counter()
    for start in range(0, tokens.shape[0], batch_size):
        batch, n = tokens[start : start + batch_size], lengths[start : start + batch_size]
        valid = _valid_targets(n, batch.shape[1])
        resid = model.resid_at_hook(batch)
        for out, r in ((clean, resid), (patched, splice(resid.float()).to(resid.dtype))):
            ce = model.ce_from_resid(r, batch, per_token=True, valid=valid).double()
            out.append((ce * valid).sum(1) / valid.sum(1).clamp_min(1))
    return torch.cat(clean), torch.cat(patched), time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=0.01, help="nats of patched-CE change accepted")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    cfg = load_profile(args.profile)
    gsae, _ = load_saved_gsae(cfg)          # needs notebook 00 of this profile in the cache
    docs = build_corpora(cfg.data, cfg.domains)["general_heldout"]
    results = {}
    tokens = lengths = None
    for dtype in ("float32", "bfloat16"):
        model = load_model(load_profile(args.profile, {"model.dtype": dtype}).model)
        if tokens is None:
            store = ActivationStore(model, cfg.activations)
            tokens, lengths = store.contexts([d.text for d in docs[: 4 * args.contexts]])
            tokens, lengths = tokens[: args.contexts], lengths[: args.contexts]
        splice = sae_splice(gsae)
        per_context_ce(model, tokens[:2], lengths[:2], splice, args.batch_size)   # warm-up
        clean, patched, seconds = per_context_ce(model, tokens, lengths, splice, args.batch_size)
        results[dtype] = {"clean": clean, "patched": patched, "seconds": seconds}
    n_tok = int((lengths - 1).clamp_min(0).sum())

    def paired(key: str) -> dict[str, float]:
        d = results["bfloat16"][key] - results["float32"][key]
        return {"mean_diff_nats": float(d.mean()), "sd_diff_nats": float(d.std()),
                "se_mean_diff_nats": float(d.std() / len(d) ** 0.5), "max_abs_diff_nats": float(d.abs().max())}

    gap = {dt: (results[dt]["patched"] - results[dt]["clean"]) for dt in results}
    report = {
        "profile": args.profile, "model": cfg.model.name, "contexts": int(len(lengths)), "tokens": n_tok,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "clean_ce": {dt: float(r["clean"].mean()) for dt, r in results.items()},
        "patched_ce": {dt: float(r["patched"].mean()) for dt, r in results.items()},
        "clean_diff": paired("clean"), "patched_diff": paired("patched"),
        "patched_minus_clean_diff_nats": float((gap["bfloat16"] - gap["float32"]).mean()),
        "seconds": {dt: round(r["seconds"], 3) for dt, r in results.items()},
        "speedup_bf16": round(results["float32"]["seconds"] / results["bfloat16"]["seconds"], 3),
        "tolerance_nats": args.tolerance,
    }
    report["bf16_within_tolerance"] = abs(report["patched_diff"]["mean_diff_nats"]) < args.tolerance
    OUT.mkdir(exist_ok=True)
    write_json_atomic(OUT / f"lm_dtype_{args.profile}.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
