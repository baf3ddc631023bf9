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


def test_every_figure_in_the_readme_map_exists_and_came_from_the_notebook_the_map_names():
    import re

    readme = (REPO_ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if re.match(r"^\| `\d\d_\w+\.ipynb` \|", line)]
    assert len(rows) >= 9, "the README's figure map should have one row per notebook"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        notebook = cells[0].strip("`").removesuffix(".ipynb")
        for name in re.findall(r"`([\w.]+)`", cells[4]):
            png = REPO_ROOT / "figures" / "embedded" / f"{name}.png"
            assert png.exists(), f"{name} is in the README's map for {notebook} but not in figures/embedded/"
            meta = json.loads(png.with_suffix(".meta.json").read_text())
            assert meta["notebook"] == notebook, f"{name}: the map says {notebook}, its provenance says {meta['notebook']}"


def test_readme_scorecard_table_matches_the_committed_scorecard():
    import re

    readme = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (C\d) [^|]*\| ([a-z ]+) \|", readme, flags=re.MULTILINE)
    assert [claim for claim, _ in rows] == [f"C{i}" for i in range(1, 10)], "the README's scorecard table should list C1-C9"
    committed = json.loads((REPO_ROOT / "results" / "embedded" / "08_scorecard.json").read_text())
    # the README's table shows the headline verdict: the four-outcome rule's (``ssae_utils.stats.verdict``)
    verdicts = {c["claim"]: c["verdict"] for c in committed["claims"]}
    for claim, verdict in rows:
        assert verdict.strip() == verdicts[claim], f"README says {claim} is {verdict.strip()!r}, 08_scorecard.json {verdicts[claim]!r}"
