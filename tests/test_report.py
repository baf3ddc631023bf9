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


def test_each_stylesheet_block_is_written_once_and_linked_in_place(tmp_path):
    from ssae_utils.report import _STYLE_BLOCK, _linked_sheet

    theme, page = "<style type='text/css'>body{color:red}</style>", "<style>.a{x:1}</style>"
    html_a = _STYLE_BLOCK.sub(lambda m: _linked_sheet(m.group(0), tmp_path), f"<head>{theme}{page}</head>")
    html_b = _STYLE_BLOCK.sub(lambda m: _linked_sheet(m.group(0), tmp_path), f"<head>{theme}</head>")
    sheets = sorted(tmp_path.glob("style-*.css"))
    assert len(sheets) == 2 and {s.read_text() for s in sheets} == {"body{color:red}", ".a{x:1}"}
    first, second = (f"<link rel='stylesheet' href='{s.name}'>" for s in
                     sorted(sheets, key=lambda s: s.read_text() != "body{color:red}"))
    assert html_a == f"<head>{first}{second}</head>" and html_b == f"<head>{first}</head>"   # cascade order kept


def test_the_committed_report_shares_its_stylesheets():
    sheets = sorted(INDEX.parent.glob("style-*.css"))
    texts = [s.read_text() for s in sheets]
    assert len(set(texts)) == len(texts)                    # content-addressed: no two alike
    pages = "".join(p.read_text() for p in INDEX.parent.glob("[0-9][0-9]_*.html"))
    assert "<style" not in pages and all(s.name in pages for s in sheets)
