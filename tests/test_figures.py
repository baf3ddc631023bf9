"""Committed figures: each has provenance naming an existing notebook and results file."""

from __future__ import annotations

import json

from ssae_utils.io import sha256_file
from ssae_utils.paths import REPO_ROOT


def test_every_committed_figure_names_its_notebook_and_results():
    figures = sorted((REPO_ROOT / "figures").glob("*/*.png"))
    assert figures, "no committed figures"
    readme = (REPO_ROOT / "README.md").read_text()
    for png in figures:
        meta = json.loads(png.with_suffix(".meta.json").read_text())
        profile = png.parent.name
        assert meta["figure"] == png.stem and meta["profile"] == profile
        assert (REPO_ROOT / "notebooks" / f"{meta['notebook']}.ipynb").exists(), meta
        assert png.with_suffix(".pdf").exists()
        results = REPO_ROOT / "results" / profile / meta["results_file"]
        assert results.exists(), f"{png.name} was drawn from {results}, which is not committed"
        assert png.stem in readme, f"{png.stem} is missing from the README's figure map"


def test_committed_figures_match_their_committed_results():
    for meta_path in sorted((REPO_ROOT / "figures").glob("*/*.meta.json")):
        meta = json.loads(meta_path.read_text())
        results = REPO_ROOT / "results" / meta["profile"] / meta["results_file"]
        assert sha256_file(results) == meta["results_sha256"], f"{meta_path.name}: results changed since the figure was drawn; rerun {meta['notebook']}"
