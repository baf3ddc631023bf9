"""The report you can read without running it: executed notebooks and a static HTML site.

``build_report(profile)`` (``run_all.py`` calls it after a run in which every notebook is
done) copies the executed notebooks from ``runs/<profile>/`` (already tidied by
``ssae_utils.executed``: final progress lines, no volatile metadata) into
``report/<profile>/notebooks/`` and renders each with nbconvert into
``report/<profile>/<NN_name>.html`` (figures are inline in the outputs), plus
``index.html``: the scorecard from ``08_scorecard.json``, the list of pages and the figure
map (links to ``figures/<profile>/``). Only relative links, so the folder reads the same on
GitHub Pages, from a clone or from a zip. ``SSAE_REPORT`` moves the folder (default
``report/``).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ssae_utils.io import atomic_path
from ssae_utils.paths import REPO_ROOT, figures_dir, results_dir

PAGE_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f2f2f2}.reproduced{color:#1a7f37}.contradicted{color:#b42318}.inconclusive{color:#9a6700}
.untestable{color:#57606a}a{color:#0969da}nav a{margin-right:1em}img{max-width:320px;border:1px solid #ddd}"""


def report_dir(profile: str) -> Path:
    return Path(os.environ.get("SSAE_REPORT", REPO_ROOT / "report")) / profile


_STYLE_BLOCK = re.compile(r"<style[^>]*>.*?</style>", re.S)


def _linked_sheet(style_block: str, folder: Path) -> str:
    """A ``<link>`` to the block's CSS, written once under a content-addressed name.

    nbconvert inlines several thousand lines of CSS in every page, most of it the same blocks
    (JupyterLab's theme, its widgets) with a page-specific one beside them: content-addressing
    each block, in place, keeps the cascade order and writes every shared block once."""
    css = re.sub(r"</?style[^>]*>", "", style_block)
    sheet = folder / f"style-{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
    if not sheet.exists():
        with atomic_path(sheet) as tmp:
            tmp.write_text(css, encoding="utf-8")
    return f"<link rel='stylesheet' href='{sheet.name}'>"


def _render(notebook: Path, out: Path, nav: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    start = body.find("<body")
    at = body.find(">", start) + 1 if start >= 0 else 0      # right after the opening body tag
    body = body[:at] + f"<nav style='margin:1em;font-family:sans-serif'>{nav}</nav>" + body[at:]
    # the page is self-contained: no CDN scripts (MathJax, require.js) that need a network
    body = re.sub(r"<script[^>]*src=\"https?://[^\"]*\"[^>]*>\s*</script>", "", body)
    body = _STYLE_BLOCK.sub(lambda block: _linked_sheet(block.group(0), out.parent), body)
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")


def _scorecard_rows(profile: str) -> list[dict[str, Any]]:
    path = results_dir(profile) / "08_scorecard.json"
    return json.loads(path.read_text())["claims"] if path.exists() else []


def _effect(claim: dict[str, Any]) -> str:
    subtests = (claim.get("stats") or {}).get("subtests") or []
    parts = []
    for s in subtests:
        if s.get("effect") is None:
            continue
        ci = s.get("interval")
        mde = s.get("mde")
        parts.append(f"{html.escape(s['name'])}: {s['effect']:+.3g}" + (f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "")
                     + (f", MDE {mde:.3g}" if isinstance(mde, (int, float)) else ""))
    return "<br>".join(parts) or "&ndash;"


def _index(profile: str, pages: list[str], out: Path) -> None:
    claims = _scorecard_rows(profile)
    rows = "".join(
        f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(c['text'])}</td>"
        f"<td class='{html.escape(c['verdict'])}'><b>{html.escape(c['verdict'])}</b></td><td>{_effect(c)}</td></tr>"
        for c in claims)
    figures = sorted(figures_dir(profile).glob("*.png"))
    fig_rel = os.path.relpath(figures_dir(profile), out.parent)
    by_notebook: dict[str, list[str]] = {}
    for png in figures:
        meta = png.with_suffix(".meta.json")
        notebook = json.loads(meta.read_text()).get("notebook", "?") if meta.exists() else "?"
        by_notebook.setdefault(notebook, []).append(png.name)
    fig_rows = "".join(
        f"<tr><td><a href='{html.escape(nb)}.html'>{html.escape(nb)}</a></td><td>"
        + " ".join(f"<a href='{fig_rel}/{html.escape(n)}'><img src='{fig_rel}/{html.escape(n)}' alt='{html.escape(n)}'"
                   f" title='{html.escape(n)}'></a>" for n in names) + "</td></tr>"
        for nb, names in sorted(by_notebook.items()))
    boards = ((figures_dir(profile) / "dashboards" / "index.html",
               "the Dense SSAE's tail-token features and a random sample of every model's (notebook 05)"),
              (figures_dir(profile) / "dashboards" / "bias_in_bios" / "index.html",
               "the gender features SHIFT ablates in Bias in Bios and its strongest candidates (notebook 07)"))
    dash_items = "".join(f"<li><a href='{os.path.relpath(page, out.parent)}'>{html.escape(what)}</a></li>"
                         for page, what in boards if page.exists())
    dash_link = (f"<p>Feature dashboards (top-activating windows, activation histograms, logit-lens tokens):</p>"
                 f"<ul>{dash_items}</ul>" if dash_items else "")
    page_links = "".join(f"<li><a href='{html.escape(p)}.html'>{html.escape(p)}</a> "
                         f"(<a href='notebooks/{html.escape(p)}.ipynb'>ipynb</a>)</li>" for p in pages)
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>SSAE report ({html.escape(profile)} profile)</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Specialized sparse autoencoders: the report ({html.escape(profile)} profile)</h1>
<p>Every number and figure below was computed by the executed notebooks linked here, from the results in
<code>results/{html.escape(profile)}/</code>. The claims are listed in CLAIMS.md; the verdict rule is in
<code>ssae_utils/stats/verdict.py</code>.</p>
<h2>Notebooks</h2><ol>{page_links}</ol>{dash_link}
<h2>Scorecard</h2>
<table><tr><th>claim</th><th>what the paper says</th><th>verdict</th><th>effect [interval], minimum detectable effect</th></tr>{rows}</table>
<h2>Figures</h2><table><tr><th>notebook</th><th>figures</th></tr>{fig_rows}</table>
</body></html>
"""
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")


def build_report(profile: str, runs: Path | None = None) -> Path:
    """Copy and render the executed notebooks of ``profile``; returns ``report/<profile>/index.html``."""
    runs = Path(runs or Path(os.environ.get("SSAE_RUNS", REPO_ROOT / "runs")) / profile)
    executed = sorted(runs.glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise FileNotFoundError(f"no executed notebooks in {runs}: run python run_all.py --profile {profile} first")
    out = report_dir(profile)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for old in out.glob("style-*.css"):   # stylesheets of an earlier build (content-addressed)
        old.unlink()
    pages = [nb.stem for nb in executed]
    nav = " | ".join(["<a href='index.html'>report index</a>", *(f"<a href='{p}.html'>{p}</a>" for p in pages)])
    for nb in executed:
        shutil.copyfile(nb, out / "notebooks" / nb.name)
        _render(nb, out / f"{nb.stem}.html", nav)
    index = out / "index.html"
    _index(profile, pages, index)
    return index
