"""Figures, drawn only from result files on disk (never from in-memory state).

Each ``plot_*`` function takes the path of a results JSON, draws one figure and saves it as
PNG and PDF into ``figures/<profile>/``. A small JSON sidecar records which notebook and
results file produced the figure, so the README's figure map can be checked by a test.
One module per stage; everything is re-exported here (``from ssae_utils import plots``).
"""

from ssae_utils.plots.autointerp import plot_fig3b
from ssae_utils.plots.bias_in_bios import plot_scr, plot_table1_shift
from ssae_utils.plots.common import save_figure
from ssae_utils.plots.pareto import plot_pareto
from ssae_utils.plots.retrieval import (
    plot_retrieval_quality,
    plot_score_distributions,
    plot_selection_overlap,
    plot_source_breakdown,
)
from ssae_utils.plots.setup import plot_data_card, plot_gsae_feature_density
from ssae_utils.plots.tail_tokens import plot_decoder_cosines, plot_fig2a, plot_fig2b, plot_fig3a, plot_fig7, plot_tail_tokens
from ssae_utils.plots.tracin import plot_tracin_rerank

__all__ = ["save_figure", "plot_data_card", "plot_gsae_feature_density", "plot_retrieval_quality",
           "plot_source_breakdown", "plot_score_distributions", "plot_selection_overlap",
           "plot_tracin_rerank", "plot_pareto", "plot_fig2a", "plot_fig2b", "plot_fig3a", "plot_fig7",
           "plot_decoder_cosines", "plot_tail_tokens", "plot_fig3b", "plot_table1_shift", "plot_scr"]
