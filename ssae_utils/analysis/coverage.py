"""Which token types an SAE's features cover (logit lens), per frequency bucket (paper Fig. 2).

A token type is *covered* by an SAE when it is among the top-k logit-lens tokens of at least
one of its features (``ssae_utils.analysis.logit_lens``). Only types that occur in the test
split enter the shares.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from ssae_utils.analysis.frequency import Bucket


def covered_mask(top_indices: torch.Tensor, vocab_size: int, features: torch.Tensor | None = None) -> torch.Tensor:
    """bool [vocab]: token ids in some feature's top-k (``features``: a bool [d_sae] mask of
    the features to use, e.g. only those alive on the test data; None = all)."""
    if top_indices.ndim != 2:
        raise ValueError(f"top-k indices must be [d_sae, k], got {tuple(top_indices.shape)}")
    rows = top_indices if features is None else top_indices[features]
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[rows.flatten()] = True
    return mask


def bucket_shares(covered: torch.Tensor, counts: torch.Tensor, buckets: Sequence[Bucket]) -> list[dict[str, Any]]:
    """Per bucket: its types, how many are covered, the share (Fig. 2a; None for an empty bucket)."""
    out = []
    for b in buckets:
        ids = torch.tensor(b.token_ids, dtype=torch.long)
        n_types = len(b.token_ids)
        n_cov = int(covered[ids].sum()) if n_types else 0
        out.append({"lo": b.lo, "hi": b.hi, "label": b.label, "n_types": n_types, "n_covered": n_cov,
                    "share": n_cov / n_types if n_types else None,
                    "n_occurrences": int(counts[ids].sum()) if n_types else 0})
    return out


def cumulative_coverage(covered: torch.Tensor, counts: torch.Tensor) -> dict[str, Any]:
    """Fig. 2b: types of the test split from rarest to most frequent; at each distinct count,
    the cumulative share of the data's token occurrences (x) and of its types (x_types)
    against the cumulative share of this SAE's covered types (y), normalized per model so
    that y reaches 1 over the whole split (the paper's normalization). ``n_covered`` is the
    normalizer, so the absolute level is not lost."""
    present = counts > 0
    n_covered = int((covered & present).sum())
    levels, level_of = torch.unique(counts[present], return_inverse=True)  # ascending: rarest first, ties grouped
    occ = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, level_of, counts[present].double())
    types = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, level_of, torch.ones(len(level_of), dtype=torch.float64))
    cov = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, level_of, covered[present].double())
    return {
        "order": "rarest_first",
        "count": [int(c) for c in levels],
        "x": (occ.cumsum(0) / occ.sum()).tolist(),
        "x_types": (types.cumsum(0) / types.sum()).tolist(),
        "y": (cov.cumsum(0) / n_covered).tolist() if n_covered else [0.0] * len(levels),
        "n_covered": n_covered,
    }


def features_covering(top_indices: torch.Tensor, token_id: int) -> list[int]:
    """Features whose top-k holds ``token_id`` (ascending feature index)."""
    return sorted(int(f) for f in (top_indices == token_id).any(1).nonzero().flatten())


def tail_token_table(covered: Mapping[str, torch.Tensor], top_indices: Mapping[str, torch.Tensor], counts: torch.Tensor,
                     baseline: str, specialized: Sequence[str], max_count: int,
                     decode: Callable[[int], str]) -> dict[str, Any]:
    """Tail tokens (1 <= count <= ``max_count`` in the test split) covered by at least one
    specialized SAE and not by ``baseline``, with their counts and covering features; plus,
    per specialized SAE, how many tail types only it covers, only the baseline covers, or both,
    and the tail types the baseline covers and no specialized SAE does (the reverse direction,
    so the comparison is not one-sided)."""
    missing = [m for m in [baseline, *specialized] if m not in covered]
    if missing:
        raise KeyError(f"no coverage for {missing}; have {sorted(covered)}")
    tail = (counts >= 1) & (counts <= max_count)
    summary = {}
    for name in specialized:
        summary[name] = {"only_ssae": int((tail & covered[name] & ~covered[baseline]).sum()),
                         "only_baseline": int((tail & covered[baseline] & ~covered[name]).sum()),
                         "both": int((tail & covered[name] & covered[baseline]).sum())}
    any_ssae = torch.zeros_like(tail)
    for name in specialized:
        any_ssae |= covered[name]
    ids = (tail & any_ssae & ~covered[baseline]).nonzero().flatten().tolist()
    rows = []
    for t in sorted(ids, key=lambda t: (int(counts[t]), t)):
        by = [n for n in specialized if bool(covered[n][t])]
        rows.append({"token_id": int(t), "token": decode(int(t)), "count": int(counts[t]), "covered_by": by,
                     "features": {n: features_covering(top_indices[n], int(t)) for n in by}})
    # the reverse direction, for comparison: tail types only the baseline covers
    reverse = (tail & covered[baseline] & ~any_ssae).nonzero().flatten().tolist()
    baseline_only = [{"token_id": int(t), "token": decode(int(t)), "count": int(counts[t])}
                     for t in sorted(reverse, key=lambda t: (int(counts[t]), t))]
    return {"baseline": baseline, "specialized": list(specialized), "max_count": max_count,
            "n_tail_types": int(tail.sum()), "summary": summary, "rows": rows, "baseline_only_rows": baseline_only}
