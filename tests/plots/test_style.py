"""Figures in the paper's language: one name and colour per model everywhere, byte-stable files."""

from __future__ import annotations

import json

import pytest

from ssae_utils.plots import style


def test_code_keys_and_model_labels_get_the_papers_names():
    assert style.display_name("general") == style.display_name("General SSAE") == "General (OWT baseline)"
    assert style.display_name("seed_only") == style.display_name("Seed-only SSAE") == "Seed only (Validation)"
    assert style.display_name("bm25_tracin") == "BM25-TracIn"
    assert style.display_name("GSAE") == "GSAE"
    assert style.display_name("dense+TERM t=1e+09") == style.display_name("Dense+TERM t=1e9") == "Dense + TERM t = 1e9"
    assert style.display_name("dense+TERM t=0.78125") == "Dense + TERM t = 0.781"
    assert style.display_name("Dense+TERM t=1 (loss_scale)") == "Dense + TERM t = 1, loss scale"
    assert style.display_name("dense+TERM t=0.78125 (sequences)") == "Dense + TERM t = 0.781, over sequences"
    with pytest.raises(ValueError, match="unknown model or curve name"):
        style.display_name("densest")


def test_a_strategy_has_one_colour_in_every_figure_and_arms_are_told_apart():
    pareto = style.styles(["general", "dense", "dense+TERM t=500", "dense+TERM t=1e+09"])
    tail = style.styles(["GSAE", "General SSAE", "Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"])
    assert pareto["general"] == tail["General SSAE"] and pareto["dense"] == tail["Dense SSAE"]
    assert pareto["dense+TERM t=500"] == tail["Dense+TERM t=500"]          # the same arm, the same look
    assert pareto["dense+TERM t=500"] != pareto["dense+TERM t=1e+09"]
    assert tail["GSAE"]["color"] == "black"
    colours = [s["color"] for s in style.styles(list(style.STRATEGY_NAMES)).values()]
    assert len(set(colours)) == len(colours)


def _pareto_results(tmp_path):
    curve = lambda ys: [{"l0": l0, "y": y, "l0_std": 1.0, "y_std": 0.01, "seeds": 3} for l0, y in zip((70, 100, 130), ys)]  # noqa: E731
    results = {"profile": "smoke", "figures": {"fig1a": {
        "domain": "physics", "split": "test", "relative": True, "gsae_l0": 110.0, "gsae_ppl": 20.0,
        "l0_window": [60.0, 140.0], "curves": {"general": curve((1.2, 1.0, 0.9)), "dense": curve((0.9, 0.8, 0.7))},
        "auc": {"common": [70.0, 130.0], "auc": {"general": {"auc": 60.0}, "dense": {"auc": 48.0}}}}}}
    path = tmp_path / "results" / "04_pareto.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    return path


def test_the_shaded_range_is_the_one_the_auc_uses_and_files_are_byte_stable(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from ssae_utils.plots import pareto

    monkeypatch.setenv("SSAE_FIGURES", str(tmp_path / "figures"))
    source = _pareto_results(tmp_path)
    shaded = []
    real_save = pareto.save_figure

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        shaded.extend((p.get_label(), p.get_x(), p.get_x() + p.get_width()) for p in ax.patches if p.get_label().startswith("AUC"))
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "General (OWT baseline) (AUC 60)" in labels and "Dense (AUC 48)" in labels
        return real_save(fig, *args, **kwargs)

    monkeypatch.setattr(pareto, "save_figure", spy)
    png = pareto.plot_pareto(source, "fig1a")
    assert shaded == [("AUC range, L0 70-130", 70.0, 130.0)]
    first = (png.read_bytes(), png.with_suffix(".pdf").read_bytes())
    pareto.plot_pareto(source, "fig1a")
    assert (png.read_bytes(), png.with_suffix(".pdf").read_bytes()) == first   # no creation date in either
    assert b"CreationDate" not in first[1]
    plt.close("all")
