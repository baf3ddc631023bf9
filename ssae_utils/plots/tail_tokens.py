"""Figures of stage 05 (paper Figs. 2a, 2b, 3a, 7 and the decoder-cosine diagnostic), from
``05_tail_tokens.json`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssae_utils.io import read_json
from ssae_utils.plots.common import plt, save_figure, stage_of

FIGURES = ("fig2a", "fig2b", "fig3a", "fig7", "05_decoder_cosines")


def _style(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One colour per model, stable across the figures: the GSAE dashed black, ERM solid, and
    each TERM tilt its own dash pattern (two tilts in the max-loss limit give near-identical
    curves; the patterns keep both visible)."""
    cmap = plt.get_cmap("tab10")
    tilt_styles = iter(["-.", ":", (0, (5, 2, 1, 2)), (0, (1, 3))])
    out: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(results["models"]):
        if m["strategy"] is None:
            out[m["label"]] = {"color": "black", "ls": "--"}
        else:
            out[m["label"]] = {"color": cmap(i % 10), "ls": "-" if not m["tilt"] else next(tilt_styles, "-.")}
    return out


def _label(m: dict[str, Any]) -> str:
    return f"{m['label']} (val L0 {m['val_l0']:.0f})"


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
    ax.set_title(f"fig2a: logit-lens coverage vs token frequency\n{_subtitle(results)}", fontsize=8)
    ax.legend(fontsize=7)
    return _save(fig, "fig2a", results, results_path)


def plot_fig2b(results_path: Path) -> Path:
    """Cumulative share of each model's covered types, from the rarest types up, against the
    cumulative share of the data's token occurrences (left, the paper's axis) and types (right)."""
    results = read_json(results_path)
    style = _style(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, x_key, xlabel in ((axes[0], "x", "cumulative share of token occurrences"),
                              (axes[1], "x_types", "cumulative share of token types")):
        for m in results["models"]:
            c = results["per_model"][m["label"]]["cumulative"]
            ax.plot([0.0, *c[x_key]], [0.0, *c["y"]], lw=1.3, label=f"{_label(m)}, {c['n_covered']} types", **style[m["label"]])
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
        ax.set_xlabel(xlabel + " in the test split (rarest types first)", fontsize=8)
    axes[0].set_ylabel("cumulative share of the model's covered types (1 = all)", fontsize=8)
    axes[0].set_title(f"fig2b: where each model's covered tokens lie in the frequency distribution\n{_subtitle(results)}", fontsize=8)
    axes[1].set_title("the same against token types (tail spread out)", fontsize=8)
    axes[0].legend(fontsize=7)
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
    ax.set_title(f"fig3a: feature activation count vs rank\n{_subtitle(results)}", fontsize=8)
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
    ax.set_title(f"{title}\n{_subtitle(results)}", fontsize=8)
    ax.legend(fontsize=7, loc=legend_loc)
    return _save(fig, name, results, results_path)


def plot_fig7(results_path: Path) -> Path:
    """Histogram of per-feature activation-count differences, each SSAE minus the baseline."""
    results = read_json(results_path)
    diffs = results["count_differences"]
    series = [(label, h, f"{label}: mean {h['mean']:+.1f}, {h['share_positive']:.0%} > 0, {h['share_negative']:.0%} < 0")
              for label, h in diffs["per_model"].items()]
    return _histograms(results, results_path, "fig7", series,
                       f"activation count of a feature minus its count in the {diffs['baseline']}", "features",
                       "fig7: per-feature activation-count differences vs the general-data SSAE", zero_line=True)


def plot_decoder_cosines(results_path: Path) -> Path:
    """Histogram of pairwise decoder cosine similarities per model (log count axis)."""
    results = read_json(results_path)
    series = []
    for m in results["models"]:
        c = results["per_model"][m["label"]]["decoder_cosines"]
        series.append((m["label"], c, f"{m['label']}: mean {c['mean']:.3f}, mean max {c['mean_max_cosine']:.2f}"))
    return _histograms(results, results_path, "05_decoder_cosines", series,
                       "cosine similarity of two decoder directions (all pairs)", "pairs",
                       "decoder geometry: pairwise cosines", legend_loc="upper left")


def plot_tail_tokens(results_path: Path) -> list[Path]:
    """Every figure of stage 05."""
    return [plot_fig2a(results_path), plot_fig2b(results_path), plot_fig3a(results_path), plot_fig7(results_path),
            plot_decoder_cosines(results_path)]
