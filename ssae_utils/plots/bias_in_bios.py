"""Figures of stage 07 (Bias in Bios / SHIFT), drawn only from ``07_bias_in_bios.json``.

* ``table1_shift``: the abstract versions' Table 1 as a rendered table: profession, gender
  and worst-group accuracy per method (mean over runs [bootstrap CI]) and the paper's
  worst-group numbers (Pythia-70M) where it reports one (07_table1.md / .tex hold the same).
* ``07_scr``: SAEBench's SCR score against the number of ablated latents N per SAE family.
"""

from __future__ import annotations

from pathlib import Path

from ssae_utils.io import read_json
from ssae_utils.plots.common import caption, plt, save_figure, stage_of



def plot_table1_shift(results_path: Path) -> Path:
    """Table 1 rendered as a table (not bars: the accuracies differ in the second decimal):
    mean [CI] per method and metric, rows shaded by family; the same text as 07_table1.md."""
    from ssae_utils.bios.table1 import table_rows, caption as table_caption

    results = read_json(results_path)
    if not results["table"]:
        raise ValueError(f"{results_path} holds no table rows")
    header, body = table_rows(results, 3)
    fig, ax = plt.subplots(figsize=(11.0, 0.26 * (len(body) + 1)))
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    widths = [0.19, 0.05, 0.2, 0.2, 0.2, 0.16]   # of the axes' width: the table fills it
    table = ax.table(cellText=body, colLabels=header, cellLoc="center", colLoc="center", bbox=[0, 0, 1, 1],
                     colWidths=widths)
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("0.8")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("0.9")
        else:
            cell.set_facecolor(_shade(body[r - 1][0]))
        if c == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.02
    caption(fig, table_caption(results))
    notebook, _ = stage_of(results_path)
    return save_figure(fig, "table1_shift", results["profile"], notebook, results_path)


def _shade(row: str) -> str:
    """A light background per method family (reference rows grey, GSAE blue, SSAE orange)."""
    if row.startswith(("Original", "Oracle", "Random")):
        return "0.96"
    return "#e8f0fa" if row.startswith("GSAE") else "#fdf0e2"


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
