"""Figures of stage 05 (paper Figs. 2a, 2b, 3a, 7 and the decoder-cosine diagnostic), from
``05_tail_tokens.json`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssae_utils.io import read_json
import numpy as np

from ssae_utils.plots.common import caption, plt, save_figure, stage_of
from ssae_utils.plots.style import display_name, styles

FIGURES = ("fig2a", "fig2b", "fig3a", "fig7", "05_decoder_cosines")


def _style(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One colour per model, the same in every figure (``ssae_utils.plots.style``)."""
    return styles([m["label"] for m in results["models"]])


def _label(m: dict[str, Any]) -> str:
    return f"{display_name(m['label'])} (val L0 {m['val_l0']:.0f})"


def _subtitle(results: dict[str, Any]) -> str:
    return f"{results['profile']} profile, {results['frequency']['split']}, models at val L0 ~ {results['target_l0']:g}"


def _save(fig: plt.Figure, name: str, results: dict[str, Any], results_path: Path) -> Path:
    notebook, _ = stage_of(results_path)
    return save_figure(fig, name, results["profile"], notebook, results_path)


def plot_fig2a(results_path: Path) -> Path:
    """Share of the token types of each frequency bucket that some feature's top-k covers."""
    results = read_json(results_path)
    style = _style(results)
    buckets = results["frequency"]["buckets"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in results["models"]:
        shares = results["per_model"][m["label"]]["bucket_shares"]
        pts = [(b["lo"], s["share"]) for b, s in zip(buckets, shares) if s["share"] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3.5, lw=1.3, label=_label(m), **style[m["label"]])
    ax.set_xscale("log")
    ax.set_xlabel(f"token frequency in the test split (bucket lower edge; buckets x{results['frequency']['bucket_base']:g})")
    ax.set_ylabel(f"share of the bucket's token types in some feature's top-{results['logit_lens']['top_k']}")
    ax.set_title("logit-lens coverage by token frequency", fontsize=9)
    caption(fig, f"fig2a ({_subtitle(results)}).")
    ax.legend(fontsize=7)
    return _save(fig, "fig2a", results, results_path)


def plot_fig2b(results_path: Path) -> Path:
    """Cumulative share of each model's covered types, from the rarest types up, against the
    cumulative share of the data's token occurrences (left, the paper's axis) and types
    (middle), and each model's curve minus the baseline's (right: above 0 = more of its
    covered types lie in the tail)."""
    results = read_json(results_path)
    style = _style(results)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, x_key, xlabel in ((axes[0], "x", "cumulative share of token occurrences"),
                              (axes[1], "x_types", "cumulative share of token types")):
        for m in results["models"]:
            c = results["per_model"][m["label"]]["cumulative"]
            ax.plot([0.0, *c[x_key]], [0.0, *c["y"]], lw=1.3, label=f"{_label(m)}, {c['n_covered']} types", **style[m["label"]])
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
        ax.set_xlabel(xlabel + " (rarest types first)", fontsize=8)
    baseline = results.get("count_differences", {}).get("baseline")
    if baseline not in results["per_model"]:
        baseline = next(m["label"] for m in results["models"] if m["strategy"] is not None)
    grid = np.linspace(0.0, 1.0, 201)

    def on_grid(label: str) -> np.ndarray:
        c = results["per_model"][label]["cumulative"]
        return np.interp(grid, [0.0, *c["x"]], [0.0, *c["y"]])

    base = on_grid(baseline)
    for m in results["models"]:
        if m["label"] != baseline:
            axes[2].plot(grid, on_grid(m["label"]) - base, lw=1.3, label=display_name(m["label"]), **style[m["label"]])
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set_xlabel("cumulative share of token occurrences (rarest types first)", fontsize=8)
    axes[2].set_ylabel(f"minus {display_name(baseline)}", fontsize=8)
    axes[2].set_title(f"difference to the {display_name(baseline)} SSAE", fontsize=9)
    axes[0].set_ylabel("cumulative share of the model's covered types (1 = all)", fontsize=8)
    axes[0].set_title("covered token types by frequency", fontsize=9)
    axes[1].set_title("the same against token types (tail spread out)", fontsize=9)
    axes[1].legend(fontsize=7, loc="upper left")   # the empty corner above the curves
    caption(fig, f"fig2b ({_subtitle(results)}). A type is covered when it is among some alive feature's top "
                 f"logit-lens tokens; curves above the diagonal cover the tail more than the data's mass would.")
    return _save(fig, "fig2b", results, results_path)


def plot_fig3a(results_path: Path) -> Path:
    """Feature activation count on the test sample against feature rank, per model."""
    results = read_json(results_path)
    style = _style(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in results["models"]:
        p = results["per_model"][m["label"]]
        ranked = sorted(p["activation_counts"], reverse=True)
        alive = [c for c in ranked if c > 0]
        ax.plot(range(1, len(alive) + 1), alive, lw=1.3,
                label=f"{_label(m)}, {p['activation_summary']['dead_features']} dead", **style[m["label"]])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("feature rank (dead features, count 0, not drawn)")
    ax.set_ylabel(f"activation count on {results['activation_sample']['tokens']:,} test tokens")
    ax.set_title("feature activation count by rank", fontsize=9)
    caption(fig, f"fig3a ({_subtitle(results)}).")
    ax.legend(fontsize=7)
    return _save(fig, "fig3a", results, results_path)


def _histograms(results: dict[str, Any], results_path: Path, name: str, series: list[tuple[str, dict[str, Any], str]],
                xlabel: str, ylabel: str, title: str, zero_line: bool = False, legend_loc: str = "best") -> Path:
    """Step histograms (log count axis), one per model: ``series`` = (model label, histogram
    with ``counts`` and ``edges``, legend text)."""
    style = _style(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, h, legend in series:
        ax.stairs(h["counts"], h["edges"], lw=1.3, color=style[label]["color"], ls=style[label]["ls"], label=legend)
    if zero_line:
        ax.axvline(0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    figure_name, _, short = title.partition(": ")
    ax.set_title(short or title, fontsize=9)
    caption(fig, f"{figure_name if short else name} ({_subtitle(results)}).")
    ax.legend(fontsize=7, loc=legend_loc)
    return _save(fig, name, results, results_path)


def plot_fig7(results_path: Path) -> Path:
    """Histogram of per-feature activation-count differences, each SSAE minus the baseline."""
    results = read_json(results_path)
    diffs = results["count_differences"]
    series = [(label, h, f"{display_name(label)}: mean {h['mean']:+.1f}, {h['share_positive']:.0%} > 0, {h['share_negative']:.0%} < 0")
              for label, h in diffs["per_model"].items()]
    return _histograms(results, results_path, "fig7", series,
                       f"activation count of a feature minus its count in the {display_name(diffs['baseline'])} SSAE", "features",
                       "fig7: per-feature activation-count differences vs the general-data SSAE", zero_line=True)


def plot_decoder_cosines(results_path: Path) -> Path:
    """Histogram of pairwise decoder cosine similarities per model (log count axis)."""
    results = read_json(results_path)
    series = []
    for m in results["models"]:
        c = results["per_model"][m["label"]]["decoder_cosines"]
        series.append((m["label"], c, f"{display_name(m['label'])}: mean {c['mean']:.3f}, mean max {c['mean_max_cosine']:.2f}"))
    return _histograms(results, results_path, "05_decoder_cosines", series,
                       "cosine similarity of two decoder directions (all pairs)", "pairs",
                       "decoder geometry: pairwise cosines", legend_loc="upper left")


def plot_tail_tokens(results_path: Path) -> list[Path]:
    """Every figure of stage 05."""
    return [plot_fig2a(results_path), plot_fig2b(results_path), plot_fig3a(results_path), plot_fig7(results_path),
            plot_decoder_cosines(results_path)]
