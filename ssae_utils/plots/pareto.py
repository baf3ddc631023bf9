"""Figures of stage 04: Pareto curves of patched perplexity vs L0 (paper Figures 1, 4, 5, 6)."""

from __future__ import annotations

from pathlib import Path

from ssae_utils.io import read_json
from ssae_utils.plots.common import caption, plt, save_figure, stage_of
from ssae_utils.plots.style import display_name, styles

SPLIT_LABEL = {"test": "in-distribution test", "ood_test": "out-of-distribution test", "val": "validation"}


def plot_pareto(results_path: Path, figure: str) -> Path:
    """One figure of 04_pareto.json: a curve per strategy, mean over seeds with error bars
    (seed standard deviation), the L0 range the AUC is taken over shaded (the common range of
    the curves inside the configured window), the AUC in the legend, details in the caption."""
    results = read_json(results_path)
    if figure not in results["figures"]:
        raise KeyError(f"{figure} is not in {results_path}; available: {sorted(results['figures'])}")
    f = results["figures"][figure]
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    lo, hi = f["l0_window"]
    common = f["auc"]["common"]
    if common:
        ax.axvspan(common[0], common[1], color="0.92", zorder=0, label=f"AUC range, L0 {common[0]:.0f}-{common[1]:.0f}")
    style = styles(list(f["curves"]))
    for name, points in f["curves"].items():
        pts = [p for p in points if p["l0"] is not None and p["y"] is not None]
        auc = f["auc"]["auc"].get(name, {}).get("auc")
        label = display_name(name) + (f" (AUC {auc:.3g})" if auc is not None else " (outside the range)")
        ax.errorbar([p["l0"] for p in pts], [p["y"] for p in pts], xerr=[p["l0_std"] or 0 for p in pts],
                    yerr=[p["y_std"] or 0 for p in pts], marker="o", ms=4, lw=1.2, capsize=2, label=label, **style[name])
    gsae_y = 1.0 if f["relative"] else f["gsae_ppl"]
    ax.plot([f["gsae_l0"]], [gsae_y], marker="*", ms=11, color="black", ls="none", label=f"GSAE (L0 {f['gsae_l0']:.0f})")
    if f["relative"]:
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_ylabel("patched perplexity / GSAE's")
    else:
        ax.axhline(f["gsae_ppl"], color="black", lw=0.8, ls="--")
        ax.set_ylabel("patched perplexity")
    ax.set_xlabel("L0 (validation)")
    counts = sorted({p["seeds"] for pts in f["curves"].values() for p in pts}) or [1]
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    span = (f"AUC over L0 {common[0]:.0f}-{common[1]:.0f} (shaded): the range every curve covers inside "
            f"the window L0 {lo:g}-{hi:g}" if common else f"no L0 range common to the curves inside the window {lo:g}-{hi:g}: no AUC")
    ax.set_title(f"{f['domain']}, {SPLIT_LABEL.get(f['split'], f['split'])}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    caption(fig, f"{figure} ({results['profile']} profile). Mean of {seeds} seed{'s' if counts[-1] > 1 else ''} per point, "
                 f"bars: seed standard deviation. {span}. Star: the GSAE.")
    notebook, _ = stage_of(results_path)
    return save_figure(fig, figure, results["profile"], notebook, results_path)
