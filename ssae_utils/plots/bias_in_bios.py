"""Figures of stage 07 (Bias in Bios / SHIFT), drawn only from ``07_bias_in_bios.json``.

* ``table1_shift``: the abstract versions' Table 1 as a chart: profession, gender and
  worst-group accuracy per method (mean over runs; bars: bootstrap CI), the paper's
  worst-group numbers (Pythia-70M) as hollow diamonds where it reports one.
* ``07_scr``: SAEBench's SCR score against the number of ablated latents N per SAE family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssae_utils.io import read_json
from ssae_utils.plots.common import plt, save_figure, stage_of

METRIC_TITLES = {"profession_acc": "profession accuracy (↑)", "gender_acc": "gender accuracy (ideal 0.5)",
                 "worst_group_acc": "worst-group accuracy (↑)"}


def _color(row: str) -> str:
    if row.startswith("Original") or row.startswith("Oracle"):
        return "0.35"
    if row.startswith("Random"):
        return "0.7"
    base = "tab:blue" if row.startswith("GSAE") else "tab:orange"
    return base


def plot_table1_shift(results_path: Path) -> Path:
    results = read_json(results_path)
    rows = results["table"]
    if not rows:
        raise ValueError(f"{results_path} holds no table rows")
    labels = [r["row"] for r in rows]
    y = np.arange(len(rows))[::-1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.34 * len(rows) + 1.6), sharey=True)
    for ax, (metric, title) in zip(axes, METRIC_TITLES.items()):
        means = np.array([r[metric]["mean"] for r in rows], dtype=float)
        lo = np.array([r[metric]["ci"][0] if r[metric]["ci"] else np.nan for r in rows], dtype=float)
        hi = np.array([r[metric]["ci"][1] if r[metric]["ci"] else np.nan for r in rows], dtype=float)
        err = np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)])
        hatches = ["//" if "retrain" in label else "" for label in labels]
        bars = ax.barh(y, means, xerr=err, color=[_color(label) for label in labels], capsize=2, height=0.7,
                       error_kw={"lw": 0.8})
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        for yi, m in zip(y, means):  # the value inside long bars, beside short ones
            inside = m > 0.25
            ax.text(m - 0.02 if inside else m + 0.02, yi, f"{m:.2f}", va="center", ha="right" if inside else "left",
                    fontsize=6.5, color="white" if inside else "black")
        if metric == "worst_group_acc":
            paper = [(yi, r["paper_worst_group_acc"]) for yi, r in zip(y, rows) if r.get("paper_worst_group_acc") is not None]
            if paper:
                ax.plot([p[1] for p in paper], [p[0] for p in paper], "D", mfc="none", mec="black", ms=6,
                        label="paper (Pythia-70M)")
                ax.legend(fontsize=7, loc="lower right")
        if metric == "gender_acc":
            ax.axvline(0.5, color="black", lw=0.8, ls="--")
        ax.set_xlim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels, fontsize=8)
    cfg = results["bios_config"]
    n_test = sum(g["docs"] for g in results["data"]["test"].values())
    fig.suptitle(f"Table 1 (SHIFT) on {results['data']['source']} ({results['profile']}): {cfg['professions'][0]} (male) vs "
                 f"{cfg['professions'][1]} (female); balanced test set of {n_test} documents; mean over runs, "
                 f"{round(100 * cfg['ci_level'])}% bootstrap CI; hatched: + retrain", fontsize=8.5)
    fig.tight_layout()
    notebook, _ = stage_of(results_path)
    return save_figure(fig, "table1_shift", results["profile"], notebook, results_path)


def plot_scr(results_path: Path) -> Path:
    results = read_json(results_path)
    summary = results["scr"]["summary"]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    drawn = 0
    for label in dict.fromkeys(s["label"] for s in summary):
        pts = [s for s in summary if s["label"] == label and s["scr"]["mean"] is not None]
        if not pts:
            continue
        drawn += 1
        ax.errorbar([p["n"] for p in pts], [p["scr"]["mean"] for p in pts], yerr=[p["scr"]["std"] for p in pts],
                    marker="o", ms=4, capsize=2, label=label,
                    ls="--" if "/" in label else "-", color="tab:blue" if label.startswith("GSAE") else "tab:orange")
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(1, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("latents ablated (N, top by |mean activation difference × gender-probe alignment|)", fontsize=8)
    ax.set_ylabel("SCR = (A_abl − A_orig) / (A_oracle − A_orig)", fontsize=8)
    ax.set_title(f"SAEBench SCR, remove gender ({results['profile']}; mean ± std over runs)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7)
    else:  # SCR is undefined when the oracle probe is no better than the original one
        ax.text(0.5, 0.5, "SCR undefined in every run:\nthe oracle is no better than the original probe",
                transform=ax.transAxes, ha="center", va="center", fontsize=8)
    notebook, prefix = stage_of(results_path)
    return save_figure(fig, f"{prefix}_scr", results["profile"], notebook, results_path)
