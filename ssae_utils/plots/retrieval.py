"""Figures of the data-selection stages (01 retrieval, 02 TracIn): quality, sources, scores,
overlap. Every function reads a results file with a ``domains`` section; the figure name and
notebook follow the file (01_retrieval.json -> 01_*, 02_tracin.json -> 02_*)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssae_utils.io import read_json

from ssae_utils.plots.common import domain_panels, domains_of, plt, save_figure, stage_of

def plot_retrieval_quality(results_path: Path) -> Path:
    """Precision and recall of each strategy's selection against the planted documents."""
    results, fig, panels = domain_panels(results_path, 5.2, 3.6)
    for ax, domain in panels:
        quality = results["domains"][domain]["quality"]
        names = list(quality)
        x = np.arange(len(names))
        n_pos = results["domains"][domain]["n_known_positives"]
        if not n_pos:    # nothing planted (the paper profile): precision and recall are undefined
            ax.text(0.5, 0.5, "no planted documents in the pool:\nprecision and recall are undefined",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)
        else:
            ax.bar(x - 0.2, [quality[n]["precision"] for n in names], 0.4, label="precision", color="tab:blue")
            ax.bar(x + 0.2, [quality[n]["recall"] for n in names], 0.4, label="recall", color="tab:orange")
            ax.legend(fontsize=8)
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_title(f"{domain}: {n_pos} planted documents, budget {results['domains'][domain]['budget']:,} tokens", fontsize=9)
    fig.suptitle(f"Retrieval quality against the planted documents ({results['profile']}); precision is a lower bound", fontsize=10)
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_retrieval_quality", results["profile"], notebook, results_path)


def plot_source_breakdown(results_path: Path) -> Path:
    """Share of each selection's tokens by source corpus."""
    results, fig, panels = domain_panels(results_path, 5.5, 3.4)
    domains = domains_of(results)
    sources = sorted({s for d in domains for sel in results["domains"][d]["selections"].values() for s in sel["breakdown"].get("source", {})})
    cmap = plt.get_cmap("tab10")
    for ax, domain in panels:
        selections = results["domains"][domain]["selections"]
        names = list(selections)
        left = np.zeros(len(names))
        for k, source in enumerate(sources):
            tokens = np.array([selections[n]["breakdown"].get("source", {}).get(source, {}).get("tokens", 0) for n in names], dtype=float)
            totals = np.array([max(selections[n]["total_tokens"], 1) for n in names], dtype=float)
            ax.barh(names, tokens / totals, left=left, color=cmap(k % 10), label=source)
            left += tokens / totals
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("share of selected tokens")
        ax.set_title(domain, fontsize=10)
    panels[-1][0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Where each selection comes from ({results['profile']})", fontsize=10)
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_source_breakdown", results["profile"], notebook, results_path)


def plot_score_distributions(results_path: Path) -> Path:
    """Retrieval scores of the planted documents vs every other pool document."""
    results = read_json(results_path)
    domains = domains_of(results)
    retrievers = list(results["domains"][domains[0]]["score_histograms"])
    fig, axes = plt.subplots(len(domains), len(retrievers), figsize=(4.6 * len(retrievers), 2.9 * len(domains)), squeeze=False)
    for i, domain in enumerate(domains):
        for j, name in enumerate(retrievers):
            hist = results["domains"][domain]["score_histograms"][name]
            edges = np.asarray(hist["edges"])
            centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
            for key, color in (("others", "tab:gray"), ("positives", "tab:red")):
                counts = np.asarray(hist[key], dtype=float)
                ax = axes[i][j]
                ax.bar(centers, counts / max(counts.sum(), 1), width, alpha=0.6, color=color, label=f"{key} ({int(counts.sum())})")
            axes[i][j].set_title(f"{domain}: {name}", fontsize=9)
            axes[i][j].set_xlabel("score")
            axes[i][j].legend(fontsize=7)
    fig.suptitle(f"Score distributions, normalised per group ({results['profile']})", fontsize=10)
    fig.tight_layout()
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_score_distributions", results["profile"], notebook, results_path)


def plot_selection_overlap(results_path: Path) -> Path:
    """Jaccard overlap of the selected document sets."""
    results, fig, panels = domain_panels(results_path, 4.4, 3.8)
    for ax, domain in panels:
        matrix = results["domains"][domain]["overlap_jaccard"]
        names = list(matrix)
        values = np.array([[matrix[a][b] for b in names] for a in names])
        ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        for a in range(len(names)):
            for b in range(len(names)):
                ax.text(b, a, f"{values[a, b]:.2f}", ha="center", va="center", fontsize=7, color="white" if values[a, b] < 0.6 else "black")
        ax.set_title(domain, fontsize=10)
    fig.suptitle(f"Jaccard overlap of selected documents ({results['profile']})", fontsize=10)
    fig.tight_layout()
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_selection_overlap", results["profile"], notebook, results_path)
