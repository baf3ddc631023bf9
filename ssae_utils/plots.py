"""Figures, drawn only from result files on disk (never from in-memory state).

Each ``plot_*`` function takes the path of a results JSON, draws one figure and saves it as
PNG and PDF into ``figures/<profile>/``. A small JSON sidecar records which notebook and
results file produced the figure, so the README's figure map can be checked by a test.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: notebooks and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ssae_utils.io import read_json, sha256_file, write_json_atomic  # noqa: E402
from ssae_utils.paths import REPO_ROOT, figures_dir  # noqa: E402


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_figure(fig: plt.Figure, name: str, profile: str, notebook: str, source: Path) -> Path:
    """Save ``fig`` as PNG + PDF with a provenance sidecar; returns the PNG path."""
    out = figures_dir(profile)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(out / f"{name}.pdf", bbox_inches="tight")
    plt.close(fig)
    write_json_atomic(
        out / f"{name}.meta.json",
        {
            "figure": name,
            "notebook": notebook,
            "profile": profile,
            "results_file": Path(source).name,
            "results_sha256": sha256_file(source),
            "git_commit": _git_commit(),
        },
    )
    return png


def plot_data_card(results_path: Path) -> Path:
    """Left: size of each split (log scale). Right: its make-up by source (shares)."""
    results = read_json(results_path)
    rows = [r for r in results["data_card"] if r.get("source") not in (None, "(all)")]
    splits = list(dict.fromkeys(r["split"] for r in rows))
    sources = sorted({r["source"] for r in rows})
    measure = "tokens" if all(r.get("tokens") is not None for r in rows) else "words"
    table = np.array([[sum(r[measure] for r in rows if r["split"] == sp and r["source"] == so) for so in sources] for sp in splits], dtype=float)
    totals = table.sum(1)
    fig, (ax_size, ax_mix) = plt.subplots(1, 2, figsize=(11, 0.42 * len(splits) + 1.6), sharey=True, gridspec_kw={"width_ratios": [1, 1.4]})
    ax_size.barh(splits, totals, color="tab:gray")
    ax_size.set_xscale("log")
    ax_size.set_xlim(right=totals.max() * 12)  # room for the labels
    ax_size.set_xlabel(f"{measure} (log scale)")
    for y, total in enumerate(totals):
        ax_size.text(total, y, f" {total:,.0f}", va="center", fontsize=7)
    ax_size.invert_yaxis()
    left = np.zeros(len(splits))
    cmap = plt.get_cmap("tab10")
    for k, source in enumerate(sources):
        share = table[:, k] / np.maximum(totals, 1)
        ax_mix.barh(splits, share, left=left, color=cmap(k % 10), label=source)
        left += share
    ax_mix.set_xlim(0, 1)
    ax_mix.set_xlabel(f"share of the split's {measure} by source")
    ax_mix.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Data card ({results['profile']} profile)")
    return save_figure(fig, "00_data_card", results["profile"], "00_setup", results_path)


def plot_gsae_feature_density(results_path: Path) -> Path:
    """Histogram of log10 firing frequency per GSAE feature on held-out text."""
    results = read_json(results_path)
    density = np.asarray(results["gsae"]["feature_density"], dtype=float)
    held = results["gsae"]["heldout"]
    alive = density[density > 0]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if alive.size:
        ax.hist(np.log10(alive), bins=50, color="tab:blue")
    ax.set_xlabel("log10(fraction of held-out tokens the feature fires on)")
    ax.set_ylabel("features")
    ax.set_title(
        f"GSAE feature density ({results['profile']}): L0 {held['l0']:.1f}, "
        f"FVU {held['fvu']:.3f}, CE rec. {_fmt(held['ce_loss_recovered'])}, dead {int((density == 0).sum())}",
        fontsize=9,
    )
    return save_figure(fig, "00_gsae_feature_density", results["profile"], "00_setup", results_path)


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


# ---------------------------------------------------------------- stage 01: retrieval
def _domains(results: dict[str, Any]) -> list[str]:
    return list(results["domains"])


def _domain_panels(results_path: Path, width: float, height: float) -> tuple[dict[str, Any], plt.Figure, list[tuple[Any, str]]]:
    """Read stage-01 results and open one panel per subdomain: (results, figure, [(axis, domain)])."""
    results = read_json(results_path)
    domains = _domains(results)
    fig, axes = plt.subplots(1, len(domains), figsize=(width * len(domains), height), squeeze=False)
    return results, fig, list(zip(axes[0], domains))


def plot_retrieval_quality(results_path: Path) -> Path:
    """Precision and recall of each strategy's selection against the planted documents."""
    results, fig, panels = _domain_panels(results_path, 5.2, 3.6)
    for ax, domain in panels:
        quality = results["domains"][domain]["quality"]
        names = list(quality)
        x = np.arange(len(names))
        ax.bar(x - 0.2, [quality[n]["precision"] for n in names], 0.4, label="precision", color="tab:blue")
        ax.bar(x + 0.2, [quality[n]["recall"] for n in names], 0.4, label="recall", color="tab:orange")
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylim(0, 1)
        n_pos = results["domains"][domain]["n_known_positives"]
        ax.set_title(f"{domain}: {n_pos} planted documents, budget {results['domains'][domain]['budget']:,} tokens", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"Retrieval quality against the planted documents ({results['profile']}); precision is a lower bound", fontsize=10)
    return save_figure(fig, "01_retrieval_quality", results["profile"], "01_retrieval", results_path)


def plot_source_breakdown(results_path: Path) -> Path:
    """Share of each selection's tokens by source corpus."""
    results, fig, panels = _domain_panels(results_path, 5.5, 3.4)
    domains = _domains(results)
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
    return save_figure(fig, "01_source_breakdown", results["profile"], "01_retrieval", results_path)


def plot_score_distributions(results_path: Path) -> Path:
    """Retrieval scores of the planted documents vs every other pool document."""
    results = read_json(results_path)
    domains = _domains(results)
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
    return save_figure(fig, "01_score_distributions", results["profile"], "01_retrieval", results_path)


def plot_selection_overlap(results_path: Path) -> Path:
    """Jaccard overlap of the selected document sets."""
    results, fig, panels = _domain_panels(results_path, 4.4, 3.8)
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
    return save_figure(fig, "01_selection_overlap", results["profile"], "01_retrieval", results_path)
