"""The committed HTML report: every page, image and internal link resolves; in headless
Chromium (Debian's chromium package) every page loads and the index is not blank."""

from __future__ import annotations

import pytest

from ssae_utils.paths import REPO_ROOT
from tests.report_check import check_in_browser, check_links, chromium

INDEX = REPO_ROOT / "report" / "embedded" / "index.html"


def test_the_committed_report_has_every_notebook_and_its_links_resolve():
    pages = {p.stem for p in check_links(INDEX)}
    notebooks = {p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks <= pages, f"pages missing from the report: {sorted(notebooks - pages)}"
    for stem in notebooks:
        assert (INDEX.parent / "notebooks" / f"{stem}.ipynb").exists()
    text = INDEX.read_text()
    assert "Scorecard" in text and all(f">C{i}<" in text for i in range(1, 10))


@pytest.mark.skipif(chromium() is None, reason="no Chromium here (apt-get install chromium); .ci/run installs it")
def test_the_committed_report_loads_in_headless_chromium(tmp_path):
    check_in_browser(INDEX, tmp_path / "index.png")
