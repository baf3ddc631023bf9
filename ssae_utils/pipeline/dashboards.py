"""Feature dashboards of stages 05 and 07: the features the report talks about, as pages.

Which features (fixed rules, no look at any verdict). Stage 05:
* the Dense SSAE's features that cover a tail token the general-data SSAE's features do not
  (``05_tail_tokens.json`` ``tail_tokens.rows``; word-like tokens first, then the rarest; one
  feature per token), up to ``TAIL_FEATURES``;
* ``RANDOM_FEATURES`` features that fire on the sample, drawn with a fixed seed, for every
  compared model (the GSAE, the baselines and every TERM arm), so a reader can see what a
  typical feature of each looks like.
Stage 07 (Bias in Bios):
* every feature SHIFT ablates from each full-width SAE (GSAE, every biographies SSAE) or from its
  1/8 slice (the slice's feature i is the full SAE's feature i), for the first probe seed (the
  one the audit lists), and the ``GENDER_CANDIDATES`` candidates of highest attribution whether
  selected or not, so a reader also sees what the rule turned down. Windows come from the
  training-side biographies the audit reads (never the balanced test set).
Pages go to ``figures/<profile>/dashboards/`` (stage 07's to its ``bias_in_bios/`` folder)
beside the figures, with a ``dashboards.json`` holding the numbers they are drawn from; the HTML
report's index links both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ssae_utils.analysis.dashboards import FeatureDashboard, build_dashboards, render_dashboards
from ssae_utils.analysis.logit_lens import final_norm_scale, lens_directions

TAIL_FEATURES = 8
RANDOM_FEATURES = 3
LENS_TOKENS = 8
SEED = 0
DENSE = "Dense SSAE"
GENDER_CANDIDATES = 3
BIOS_FOLDER = "bias_in_bios"


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


def _token_texts(lm: Any, token_ids: torch.Tensor) -> list[str]:
    """Each token's text (every distinct id decoded once)."""
    text_of = {int(i): lm.tokenizer.decode([int(i)]) for i in torch.unique(token_ids).tolist()}
    return [text_of[int(i)] for i in token_ids.tolist()]


def stage05_dashboards(results: dict[str, Any], saes: dict[str, Any], lm: Any, acts: torch.Tensor,
                       token_ids: torch.Tensor, doc_index: torch.Tensor, out_dir: Path) -> Path:
    """Build and render the dashboards of stage 05; returns their index page."""
    tokens = _token_texts(lm, token_ids)
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


# ---------------------------------------------------------------------------- stage 07
def full_view_name(view: str, full_views: set[str]) -> str | None:
    """The full-width SAE a view's features belong to: itself, or the SAE it is a slice of
    ("SSAE seed 1 1/8" -> "SSAE seed 1"); None when neither is known."""
    if view in full_views:
        return view
    base = view.rsplit(" ", 1)[0]
    return base if base in full_views else None


def gender_features(audit: dict[str, list[dict[str, Any]]], full_views: Sequence[str],
                    candidates: int = GENDER_CANDIDATES) -> dict[str, dict[int, str]]:
    """Per full-width SAE: feature -> why it is shown (stage 07's ``features`` audit lists each
    view's SHIFT candidates in attribution order with a ``selected`` flag)."""
    known = set(full_views)
    picked: dict[str, dict[int, list[str]]] = {name: {} for name in full_views}
    for view, rows in audit.items():
        base = full_view_name(view, known)
        if base is None:
            continue
        for r in rows:
            if not (r["selected"] or (view == base and r["rank"] < candidates)):
                continue
            state = "ablated by SHIFT" if r["selected"] else "a SHIFT candidate not selected"
            picked[base].setdefault(int(r["feature"]), []).append(
                f"{state} in the {view} (attribution rank {r['rank'] + 1}, gender share {r['gender_share']:.2f})")
    return {name: {f: "; ".join(notes) for f, notes in sorted(chosen.items())} for name, chosen in picked.items() if chosen}


def stage07_dashboards(audit: dict[str, list[dict[str, Any]]], saes: dict[str, Any], lm: Any, acts: torch.Tensor,
                       token_ids: torch.Tensor, doc_index: torch.Tensor, out_dir: Path, title: str) -> Path:
    """Dashboards of the gender features (``gender_features``) of the full-width SAEs ``saes``
    (name -> SAE), over the given biographies' tokens; returns their index page."""
    tokens = _token_texts(lm, token_ids)
    boards: list[FeatureDashboard] = []
    for name, chosen in gender_features(audit, list(saes)).items():
        boards += build_dashboards(name, saes[name].encode, acts, doc_index.numpy(), tokens, chosen,
                                   _lens(saes[name], lm, sorted(chosen)))
    return render_dashboards(boards, out_dir, title)
