"""Every figure of a profile, redrawn from its results files alone (``run_all.py --figures-only``).

The same calls the notebooks make, in notebook order, and nothing else: no model, no cache,
no torch. A results file that is missing is skipped and named (its notebook has not run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ssae_utils.io import read_json
from ssae_utils.plots.autointerp import plot_fig3b
from ssae_utils.plots.bias_in_bios import plot_scr, plot_table1_shift
from ssae_utils.plots.pareto import plot_pareto
from ssae_utils.plots.retrieval import plot_retrieval_quality, plot_score_distributions, plot_selection_overlap, plot_source_breakdown
from ssae_utils.plots.setup import plot_data_card, plot_gsae_feature_density
from ssae_utils.plots.tail_tokens import plot_tail_tokens
from ssae_utils.plots.tracin import plot_tracin_rerank

_RETRIEVAL = (plot_retrieval_quality, plot_score_distributions, plot_selection_overlap, plot_source_breakdown)


def _pareto(path: Path) -> list[Path]:
    return [plot_pareto(path, figure) for figure in read_json(path)["figures"]]


def _one(plot: Callable[[Path], Path]) -> Callable[[Path], list[Path]]:
    return lambda path: [plot(path)]


# results file -> what draws its figures (the notebook's plotting cells)
DRAWERS: dict[str, list[Callable[[Path], list[Path]]]] = {
    "00_setup.json": [_one(plot_data_card), _one(plot_gsae_feature_density)],
    "01_retrieval.json": [_one(p) for p in _RETRIEVAL],
    "02_tracin.json": [*(_one(p) for p in _RETRIEVAL), _one(plot_tracin_rerank)],
    "04_pareto.json": [_pareto],
    "05_tail_tokens.json": [plot_tail_tokens],
    "06_autointerp.json": [_one(plot_fig3b)],
    "07_bias_in_bios.json": [_one(plot_table1_shift), _one(plot_scr)],
}


def redraw_all(results_folder: Path, log: Callable[[str], None] = print) -> tuple[list[Path], list[str]]:
    """Redraw every figure whose results file is in ``results_folder``; returns (figures, missing files)."""
    drawn: list[Path] = []
    missing: list[str] = []
    for name, drawers in DRAWERS.items():
        path = Path(results_folder) / name
        if not path.exists():
            missing.append(name)
            continue
        for draw in drawers:
            drawn += draw(path)
        log(f"{name}: {len(drawn)} figure(s) so far")
    return drawn, missing
