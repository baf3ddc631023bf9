#!/usr/bin/env python
"""SAE-TracIn scoring throughput: batched closed form vs per-document autograd.

    python bench/bench_tracin.py                    # synthetic SAE and data, d_in 640, d_sae 4096
    python bench/bench_tracin.py --gsae .cache/saes/gsae/<key> --acts <shard>.acts.npy

Both variants score the same documents against the same seed gradient in one process, so the
ratio does not depend on the machine. ``ours`` is ``ssae_utils.tracin.tracin_scores`` over all
documents; ``baseline`` is what the definition says: per document, loss.backward() through
SAELens' own forward, flatten the parameter gradients, dot with the seed gradient. The baseline
runs on the first ``--baseline-docs`` documents and its rate is per document (documents have
equal length). The seed gradient (one backward pass) is shared and timed separately.

Synthetic data: a SAELens-initialised SAE whose encoder biases are set so each feature fires on
2.5% of tokens (L0 ~ 100, as the embedded GSAE's 103), on tokens built from sparse mixes of
decoder rows. With ``--gsae``/``--acts`` the real GSAE scores real cached activations (BOS rows
dropped using the shard manifest, and tokens above the GSAE's outlier norm limit) with lambda
mapped to the folded, raw-activation scale. A few documents are also scored by float64
autograd, to tell which float32 result is off when the two differ.
Writes bench/results/tracin_<synthetic|gsae>_threads<n>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.sae.gsae import load_sae, read_training_info  # noqa: E402
from ssae_utils.tracin import PARAM_NAMES, TracInConfig, seed_gradient, tracin_scores  # noqa: E402

FIRING_RATE = 0.025


@torch.no_grad()
def synthetic(d_in, d_sae, n_tokens, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    sae.b_dec.copy_(torch.randn(d_in, generator=gen))
    codes = (torch.rand(n_tokens, d_sae, generator=gen) < FIRING_RATE) * torch.rand(n_tokens, d_sae, generator=gen)
    acts = sae.b_dec + codes @ sae.W_dec * 10 + 0.1 * torch.randn(n_tokens, d_in, generator=gen)
    # Thresholds from a calibration slice: each feature active on ~FIRING_RATE of tokens.
    pre = (acts[:2048] - sae.b_dec) @ sae.W_enc
    sae.b_enc.copy_(-torch.quantile(pre, 1 - FIRING_RATE, dim=0))
    return sae, acts, 1.0


def real(gsae_dir, acts_path, n_tokens):
    sae = load_sae(Path(gsae_dir))
    info = read_training_info(Path(gsae_dir))
    acts = torch.from_numpy(np.load(acts_path, mmap_mode="r")[:].astype(np.float32))
    manifest = Path(str(acts_path).replace(".acts.npy", ".json"))
    if manifest.exists():  # every context starts with BOS: drop those rows (huge-norm outliers)
        lengths = torch.tensor(json.loads(manifest.read_text())["lengths"])
        bos = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        keep = torch.ones(len(acts), dtype=torch.bool)
        keep[bos] = False
        acts = acts[keep]
    # Tokens beyond the GSAE's outlier norm limit were left out of its training; left in,
    # one such token dominates its document's score (and the seed gradient) by orders of magnitude.
    acts = acts[acts.norm(dim=-1) <= info.get("norm_threshold", float("inf"))]
    if len(acts) < n_tokens:
        raise SystemExit(f"{acts_path} has {len(acts)} usable tokens, {n_tokens} needed")
    # The GSAE trained on activations scaled by s; folding s into the weights makes its
    # training loss s^2 * (||x - x_hat||^2 + (lambda/s) * sum c_i f_i) on raw activations.
    lam = info["config"]["l1_coefficient"] / info.get("norm_scaling_factor", 1.0)
    return sae, acts[:n_tokens], lam


def per_document_autograd(sae, docs, g_flat, lam):
    """The definition, literally: one backward pass per document."""
    params = [getattr(sae, name) for name in PARAM_NAMES]
    dec_norm_scores = []
    for x in docs:
        sae.zero_grad(set_to_none=True)
        f = sae.encode(x)
        loss = ((sae.decode(f) - x) ** 2).sum(-1).mean() + lam * (f @ sae.W_dec.norm(dim=1)).mean()
        loss.backward()
        dec_norm_scores.append(float(torch.cat([p.grad.flatten() for p in params]) @ g_flat))
    return torch.tensor(dec_norm_scores, dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--tokens-per-doc", type=int, default=100)
    parser.add_argument("--seed-tokens", type=int, default=2000)
    parser.add_argument("--baseline-docs", type=int, default=20, help="documents the per-document loop scores")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--float64-docs", type=int, default=5, help="documents also scored in float64")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed runs; best of each kept")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--gsae", default=None, help="a saved GSAE folder (SAELens format)")
    parser.add_argument("--acts", default=None, help="an activation-cache shard *.acts.npy matching --gsae")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_cand = args.docs * args.tokens_per_doc
    if args.gsae:
        if not args.acts:
            raise SystemExit("--gsae needs --acts (cached activations of the GSAE's model and layer)")
        sae, acts, lam = real(args.gsae, args.acts, args.seed_tokens + n_cand)
        name = "gsae"
    else:
        sae, acts, lam = synthetic(640, 4096, args.seed_tokens + n_cand, seed=0)
        name = "synthetic"
    sae.eval()
    seed_acts, cand = acts[: args.seed_tokens], acts[args.seed_tokens :]
    doc_index = torch.arange(args.docs).repeat_interleave(args.tokens_per_doc)
    with torch.no_grad():
        l0 = float((sae.encode(cand[:2048]) > 0).sum(-1).float().mean())
    print(f"{name}: d_in {sae.cfg.d_in}, d_sae {sae.cfg.d_sae}, L0 {l0:.0f}, lambda {lam:.4g}, "
          f"{args.docs} docs x {args.tokens_per_doc} tokens, {args.seed_tokens} seed tokens, torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    g = seed_gradient(sae, seed_acts, TracInConfig(lam, batch_tokens=args.batch_tokens))
    seed_s = time.perf_counter() - start

    g_flat = torch.cat([g[name].flatten() for name in PARAM_NAMES])
    k = min(args.baseline_docs, args.docs)
    docs = [cand[i * args.tokens_per_doc : (i + 1) * args.tokens_per_doc] for i in range(k)]
    per_document_autograd(sae, docs[:1], g_flat, lam)  # warm-up
    # Alternate the two and keep each one's best time: the CPU is shared with other jobs.
    ours_s = base_s = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = tracin_scores(sae, None, cand, doc_index, args.docs, TracInConfig(lam, batch_tokens=args.batch_tokens), seed_grad=g)
        ours_s = min(ours_s, time.perf_counter() - start)
        start = time.perf_counter()
        base = per_document_autograd(sae, docs, g_flat, lam)
        base_s = min(base_s, time.perf_counter() - start)

    ours_rate, base_rate = args.docs / ours_s, k / base_s
    diff = (ours[:k] - base).abs()
    # Which of the two float32 results is closer to the truth: float64 per-document autograd.
    k64 = min(args.float64_docs, k)
    sae64 = deepcopy(sae).to(torch.float64)
    sae64.dtype = torch.float64  # SAELens casts inputs to this attribute
    g64 = seed_gradient(sae64, seed_acts.double(), TracInConfig(lam, batch_tokens=args.batch_tokens))
    ref = per_document_autograd(sae64, [d.double() for d in docs[:k64]], torch.cat([g64[n].flatten() for n in PARAM_NAMES]), lam)
    result = {
        "data": name,
        "gsae": args.gsae,
        "acts": args.acts,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "l0": l0,
        "l1_coefficient": lam,
        "l1_weighting": "decoder_norm",
        "docs": args.docs,
        "tokens_per_doc": args.tokens_per_doc,
        "seed_tokens": args.seed_tokens,
        "batch_tokens": args.batch_tokens,
        "baseline_docs": k,
        "repeats": args.repeats,
        "seed_gradient_s": seed_s,
        "ours_docs_per_s": ours_rate,
        "baseline_docs_per_s": base_rate,
        "ratio": ours_rate / base_rate,
        # relative to the largest |score| (robust for scores near zero) and elementwise
        "max_rel_diff_vs_max_score": float(diff.max() / base.abs().max()),
        "max_rel_diff_elementwise": float((diff / base.abs()).max()),
        "float64_reference_docs": k64,
        "ours_max_rel_diff_vs_float64": float((ours[:k64] - ref).abs().max() / ref.abs().max()),
        "baseline_max_rel_diff_vs_float64": float((base[:k64] - ref).abs().max() / ref.abs().max()),
        "rank_agreement_spearman": float(np.corrcoef(ours[:k].argsort().argsort(), base.argsort().argsort())[0, 1]),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
    }
    print(f"seed gradient ({args.seed_tokens} tokens, one backward): {seed_s:.2f} s")
    print(f"ours (batched closed form):   {ours_rate:8.1f} docs/s  ({ours_s:.2f} s for {args.docs} docs)")
    print(f"baseline (per-doc autograd):  {base_rate:8.1f} docs/s  ({base_s:.2f} s for {k} docs)")
    print(f"ratio {result['ratio']:.1f}x; max |diff| / max |score| {result['max_rel_diff_vs_max_score']:.2e}; "
          f"max elementwise rel diff {result['max_rel_diff_elementwise']:.2e}")
    print(f"vs float64 autograd on {k64} docs (max |diff| / max |score|): ours {result['ours_max_rel_diff_vs_float64']:.2e}, "
          f"baseline {result['baseline_max_rel_diff_vs_float64']:.2e}")
    out = Path(__file__).resolve().parent / "results" / f"tracin_{name}_threads{torch.get_num_threads()}.json"
    write_json_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
