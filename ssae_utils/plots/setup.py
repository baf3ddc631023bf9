"""Figures of stage 00 (setup): the data card and the GSAE's feature density."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssae_utils.io import read_json

from ssae_utils.plots.common import fmt, plt, save_figure
from ssae_utils.results import SETUP_FILE, notebook_stem


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
    return save_figure(fig, "00_data_card", results["profile"], notebook_stem(SETUP_FILE), results_path)


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
        f"FVU {held['fvu']:.3f}, CE rec. {fmt(held['ce_loss_recovered'])}, dead {int((density == 0).sum())}",
        fontsize=9,
    )
    return save_figure(fig, "00_gsae_feature_density", results["profile"], notebook_stem(SETUP_FILE), results_path)


