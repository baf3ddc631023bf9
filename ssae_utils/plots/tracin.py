"""Figures of stage 02 (SAE-TracIn): how the TracIn score reorders each retriever's candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssae_utils.io import read_json
from ssae_utils.plots.common import domains_of, plt, save_figure, stage_of


def plot_tracin_rerank(results_path: Path) -> Path:
    """First-stage score vs TracIn score of every candidate, planted documents in red; the
    dashed line is the TracIn selection's cut (candidates above it are selected)."""
    results = read_json(results_path)
    domains = domains_of(results)
    retrievers = list(results["domains"][domains[0]]["candidates"])
    fig, axes = plt.subplots(len(domains), len(retrievers), figsize=(4.6 * len(retrievers), 3.4 * len(domains)), squeeze=False)
    for i, domain in enumerate(domains):
        d = results["domains"][domain]
        for j, name in enumerate(retrievers):
            ax = axes[i][j]
            cand = d["candidates"][name]
            first = np.asarray(cand["first_stage_scores"])
            tracin = np.asarray(cand["tracin_scores"])
            pos = np.asarray(cand["is_positive"], dtype=bool)
            ax.scatter(first[~pos], tracin[~pos], s=4, alpha=0.35, color="tab:gray", label=f"others ({int((~pos).sum())})")
            ax.scatter(first[pos], tracin[pos], s=10, alpha=0.9, color="tab:red", label=f"planted ({int(pos.sum())})")
            cut = d["selections"][f"{name}_tracin"]["meta"].get("min_selected_score")
            if cut is not None:
                ax.axhline(cut, color="black", ls="--", lw=0.8)
            rho = cand["spearman_first_stage_vs_tracin"]
            ax.set_title(f"{domain}: {name} candidates (Spearman {rho:.2f})" if rho is not None else f"{domain}: {name}", fontsize=9)
            ax.set_xlabel(f"{name} score")
            ax.set_ylabel("TracIn score")
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"SAE-TracIn reranking of the first-stage candidates ({results['profile']})", fontsize=10)
    fig.tight_layout()
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_tracin_rerank", results["profile"], notebook, results_path)
