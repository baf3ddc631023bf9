"""Figure of stage 06: F1 distributions of the compared models' explanations (paper Fig. 3b)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssae_utils.io import read_json
from ssae_utils.plots.common import caption, plt, save_figure, stage_of
from ssae_utils.plots.style import display_name, styles


def plot_fig3b(results_path: Path) -> Path:
    """One histogram of per-feature F1 per model (shared bins of width 0.1), with the mean and
    its bootstrap CI above it. The title names the explainer: Claude or the offline explainer."""
    results = read_json(results_path)
    labels = list(results["summary"])
    if not labels:
        raise ValueError(f"{results_path} has no models to plot")
    fig, axes = plt.subplots(len(labels), 1, figsize=(6.0, 1.5 + 1.25 * len(labels)), sharex=True, squeeze=False)
    bins = np.linspace(0.0, 1.0, 11)
    style = styles(labels)
    l0s = {m["label"]: m.get("val_l0") for m in results.get("models", [])}
    for k, (ax, label) in enumerate(zip(axes[:, 0], labels)):
        f1 = [r["f1"] for r in results["features"][label] if r["f1"] is not None]
        s = results["summary"][label]
        color = style[label]["color"]
        ax.hist(f1, bins=bins, color=color, alpha=0.75, edgecolor="white", zorder=2)
        if s["mean"] is not None:
            ax.axvline(s["mean"], color="black", lw=1.2, zorder=3)
            if s["ci_low"] is not None:
                ax.axvspan(s["ci_low"], s["ci_high"], color="black", alpha=0.12, lw=0, zorder=1)
        mean = "n/a" if s["mean"] is None else f"{s['mean']:.2f}"
        ci = "" if s["ci_low"] is None else f" [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        failed = f", {s['failed']} failed" if s["failed"] else ""
        l0 = l0s.get(label)
        at = "" if l0 is None else f", val. L0 {l0:.0f}"
        ax.set_title(f"{display_name(label)}{at}: mean F1 {mean}{ci} (n={s['n']}{failed})", fontsize=8, loc="left")
        ax.set_ylabel("features", fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
    axes[-1, 0].set_xlabel("F1 of predicted vs true activation (5 firing + 5 silent windows)")
    axes[-1, 0].set_xlim(0, 1)
    data = results["data"]
    fig.suptitle(f"autointerp F1, {results['title_label']}", fontsize=9)
    fig.tight_layout()
    caption(fig, f"fig3b ({results['profile']} profile, {data['split']}). Line: mean F1; band: its 95% bootstrap CI; "
                 "fewer features (a wider band) for the TERM arms the scorecard does not judge.")
    notebook, _ = stage_of(results_path)
    return save_figure(fig, "fig3b", results["profile"], notebook, results_path)
