#!/usr/bin/env python
"""Patched perplexity for several SAEs: one shared clean prefix vs a full run per SAE.

    python bench/bench_patched_ce.py --profile smoke          # tiny model, seconds
    python bench/bench_patched_ce.py --profile embedded       # Gemma 3 270M + the cached GSAE

``ours`` is ``ssae_utils.sae.evaluation.spliced_ce`` with N splices: the layers up to the
hook run once per batch, then the layers after it and the unembedding once per SAE.
``baseline`` is ``HookedLM.ce_loss(tokens, splice)`` once per SAE (the whole model per SAE),
plus one clean run, since ``spliced_ce`` also reports the clean CE. Best of two timings.
Both give the same CE (checked). The N SAEs are the GSAE with small weight perturbations
(the cost does not depend on the weights).

Second comparison, on real evaluation contexts of mixed length (the physics validation
sample of notebook 03, padded to the context length): ``spliced_ce`` (contexts sorted by
length, each batch cut to its longest context, padded positions never unembedded) vs the
same shared-prefix computation on the full padded batches with the padding masked out
afterwards (what stage 03 did before). Writes bench/results/patched_ce_<profile>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
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
from ssae_utils.sae.evaluation import sae_splice, spliced_ce  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "embedded"), default="smoke")
    parser.add_argument("--saes", type=int, default=4)
    parser.add_argument("--contexts", type=int, default=8)
    args = parser.parse_args()
    cfg = load_profile(args.profile)
    model = load_model(cfg.model)
    gsae, _ = load_saved_gsae(cfg)   # needs notebook 00 of this profile
    saes = []
    for i in range(args.saes):
        sae = copy.deepcopy(gsae)
        with torch.no_grad():
            sae.W_enc.mul_(1 + 0.01 * i)
        saes.append(sae)
    store = ActivationStore(model, cfg.activations)
    texts = [d.text for d in build_corpora(cfg.data)["general_heldout"][: args.contexts * 4]]
    tokens, lengths = store.contexts(texts)
    full = lengths == tokens.shape[1]     # full contexts only: both paths then average the same positions
    tokens, lengths = tokens[full][: args.contexts], lengths[full][: args.contexts]
    splices = {f"sae{i}": sae_splice(s) for i, s in enumerate(saes)}
    batch = cfg.activations.batch_size

    def ours():
        return spliced_ce(model, tokens, lengths, splices, batch_size=batch)

    @torch.no_grad()
    def baseline():
        out = {"clean": float(model.ce_loss(tokens))}   # spliced_ce reports the clean CE too
        for name, splice in splices.items():
            out[name] = float(model.ce_loss(tokens, splice=splice))
        return out

    ours(), baseline()  # warm-up
    t_ours = t_base = float("inf")
    for _ in range(2):
        t = time.perf_counter(); got = ours(); t_ours = min(t_ours, time.perf_counter() - t)
        t = time.perf_counter(); base = baseline(); t_base = min(t_base, time.perf_counter() - t)
    n_tok = int(lengths.sum())
    result = {"profile": args.profile, "saes": args.saes, "contexts": args.contexts, "tokens": n_tok,
              "threads": torch.get_num_threads(), "ours_s": t_ours, "baseline_s": t_base,
              "speedup": t_base / t_ours,
              "ours_sae_tokens_per_s": args.saes * n_tok / t_ours, "baseline_sae_tokens_per_s": args.saes * n_tok / t_base,
              "max_ce_diff": max(abs(got[k] - base[k]) for k in base),
              "ce_ours": got, "ce_baseline": base}
    result["padding"] = padding_comparison(cfg, model, store, splices, batch)
    out = Path(__file__).resolve().parent / "results" / f"patched_ce_{args.profile}.json"
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


def padding_comparison(cfg, model, store, splices, batch) -> dict:
    from ssae_utils.pipeline.finetune import eval_documents
    from ssae_utils.sae.evaluation import _valid_targets

    docs = eval_documents(build_corpora(cfg.data)["physics_val"], store, cfg.finetune.eval_contexts, cfg.seed + 7)
    tokens, lengths = store.contexts([d.text for d in docs])

    def skip_padding():
        return spliced_ce(model, tokens, lengths, splices, batch_size=batch)

    @torch.no_grad()
    def padded():
        totals = {name: 0.0 for name in ["clean", *splices]}
        count = 0
        for start in range(0, tokens.shape[0], batch):
            rows = tokens[start : start + batch]
            valid = _valid_targets(lengths[start : start + batch], rows.shape[1])
            resid = model.resid_at_hook(rows)
            count += int(valid.sum())
            for name in totals:
                ce = model.ce_from_resid(resid if name == "clean" else splices[name](resid), rows, per_token=True)
                totals[name] += float(ce[valid].sum())
        return {k: v / count for k, v in totals.items()}

    skip_padding(), padded()
    t_skip = t_pad = float("inf")
    for _ in range(2):
        t = time.perf_counter(); a = skip_padding(); t_skip = min(t_skip, time.perf_counter() - t)
        t = time.perf_counter(); b = padded(); t_pad = min(t_pad, time.perf_counter() - t)
    return {"contexts": int(tokens.shape[0]), "positions": int(tokens.numel()), "valid_predictions": int((lengths - 1).sum()),
            "skip_padding_s": t_skip, "padded_s": t_pad, "speedup": t_pad / t_skip,
            "max_ce_diff": max(abs(a[k] - b[k]) for k in b)}


if __name__ == "__main__":
    main()
