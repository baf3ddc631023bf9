"""Stage 05's feature dashboards: the features the report talks about, as pages.

Which features (fixed rules, no look at any verdict):
* the Dense SSAE's features that cover a tail token the general-data SSAE's features do not
  (``05_tail_tokens.json`` ``tail_tokens.rows``; word-like tokens first, then the rarest; one
  feature per token), up to ``TAIL_FEATURES``;
* ``RANDOM_FEATURES`` features that fire on the sample, drawn with a fixed seed, for every
  compared model (the GSAE, the baselines and every TERM arm), so a reader can see what a
  typical feature of each looks like.
Pages go to ``figures/<profile>/dashboards/`` beside the figures, with a ``dashboards.json``
holding the numbers they are drawn from; the HTML report's index links them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssae_utils.analysis.dashboards import FeatureDashboard, build_dashboards, render_dashboards
from ssae_utils.analysis.logit_lens import final_norm_scale, lens_directions

TAIL_FEATURES = 8
RANDOM_FEATURES = 3
LENS_TOKENS = 8
SEED = 0
DENSE = "Dense SSAE"


def _word_like(token: str) -> bool:
    text = token.strip()
    return text.isalpha() and len(text) >= 4


def tail_features(tail: dict[str, Any], baseline: str, model: str = DENSE, n: int = TAIL_FEATURES) -> dict[int, str]:
    """Features of ``model`` covering tail tokens that ``baseline`` does not cover, each with why."""
    rows = [r for r in tail["rows"] if model in r["covered_by"] and baseline not in r["covered_by"]]
    rows.sort(key=lambda r: (not _word_like(r["token"]), r["count"], r["token_id"]))
    out: dict[int, str] = {}
    for r in rows:   # one feature per token (its first): as many different tokens as possible
        free = [f for f in r["features"].get(model, []) if int(f) not in out]
        if free and len(out) < n:
            out[int(free[0])] = (f"covers the tail token {r['token']!r} (seen {r['count']}x in the test split) "
                                 f"through the logit lens; no feature of the {baseline} does")
    return out


def random_features(counts: np.ndarray, n: int = RANDOM_FEATURES, seed: int = SEED) -> dict[int, str]:
    alive = np.flatnonzero(np.asarray(counts) > 0)
    picked = np.random.default_rng(seed).choice(alive, size=min(n, alive.size), replace=False) if alive.size else []
    return {int(f): "a random feature that fires on the test sample" for f in sorted(picked)}


def _lens(sae: Any, lm: Any, features: list[int]) -> dict[int, tuple[list, list]]:
    """Promoted and suppressed tokens of a few decoder directions (the full vocabulary, exact)."""
    with torch.no_grad():
        directions = lens_directions(sae.W_dec.detach()[features].float().cpu(), final_norm_scale(lm))
        logits = directions @ lm.W_U.detach().float().cpu()
        top, bottom = logits.topk(LENS_TOKENS, dim=1), logits.topk(LENS_TOKENS, dim=1, largest=False)
    decode = lambda i: lm.tokenizer.decode([int(i)])  # noqa: E731
    return {f: ([(decode(i), float(v)) for v, i in zip(top.values[k], top.indices[k])],
                [(decode(i), float(v)) for v, i in zip(bottom.values[k], bottom.indices[k])])
            for k, f in enumerate(features)}


def stage05_dashboards(results: dict[str, Any], saes: dict[str, Any], lm: Any, acts: torch.Tensor,
                       token_ids: torch.Tensor, doc_index: torch.Tensor, out_dir: Path) -> Path:
    """Build and render the dashboards of stage 05; returns their index page."""
    text_of = {int(i): lm.tokenizer.decode([int(i)]) for i in torch.unique(token_ids).tolist()}
    tokens = [text_of[int(i)] for i in token_ids.tolist()]
    boards: list[FeatureDashboard] = []
    for m in results["models"]:
        label = m["label"]
        chosen = random_features(np.asarray(results["per_model"][label]["activation_counts"]))
        if label == DENSE:
            chosen = {**tail_features(results["tail_tokens"], results["baseline"]), **chosen}
        if not chosen:
            continue
        boards += build_dashboards(label, saes[label].encode, acts, doc_index.numpy(), tokens, chosen,
                                   _lens(saes[label], lm, sorted(chosen)))
    return render_dashboards(boards, out_dir, f"Feature dashboards ({results['profile']} profile, {results['frequency']['split']})")
