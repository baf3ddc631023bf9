"""Shared plumbing of the figures: saving with a provenance sidecar, per-domain panels."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: notebooks and CI have no display
import matplotlib.pyplot as plt  # noqa: E402

from ssae_utils.io import read_json, sha256_file, write_json_atomic  # noqa: E402
from ssae_utils.results import ALL_FILES, notebook_of, notebook_stem  # noqa: E402
from ssae_utils.paths import REPO_ROOT, figures_dir  # noqa: E402


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def caption(fig: plt.Figure, text: str) -> None:
    """A caption under the axes (the details a title would otherwise carry), wrapped to the figure."""
    import textwrap

    width = max(60, int(fig.get_figwidth() * 15))
    fig.text(0.01, -0.01, textwrap.fill(text, width), ha="left", va="top", fontsize=7, color="0.25")


# No creation date (PDF) and a fixed software tag (PNG): the same figure is the same bytes,
# so a rerun that changes nothing shows no diff
PDF_METADATA = {"CreationDate": None, "Creator": "ssae_utils", "Producer": None}
PNG_METADATA = {"Software": "ssae_utils"}


def save_figure(fig: plt.Figure, name: str, profile: str, notebook: str, source: Path) -> Path:
    """Save ``fig`` as PNG + PDF with a provenance sidecar; returns the PNG path."""
    out = figures_dir(profile)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata=PNG_METADATA)
    fig.savefig(out / f"{name}.pdf", bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(fig)
    write_json_atomic(
        out / f"{name}.meta.json",
        {
            "figure": name,
            "notebook": notebook,
            "profile": profile,
            "results_file": Path(source).name,
            "results_sha256": sha256_file(source),
            "git_commit": _git_commit(),
        },
    )
    return png


def fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def stage_of(results_path: Path) -> tuple[str, str]:
    """("01_retrieval", "01") from ".../01_retrieval.json": the notebook and figure prefix
    (from the results-file registry, ``ssae_utils.results``)."""
    name = Path(results_path).name
    if name in ALL_FILES:
        return notebook_stem(name), notebook_of(name)
    stem = Path(results_path).stem
    return stem, stem[:2]


def domains_of(results: dict[str, Any]) -> list[str]:
    return list(results["domains"])


def domain_panels(results_path: Path, width: float, height: float) -> tuple[dict[str, Any], plt.Figure, list[tuple[Any, str]]]:
    """Read a per-domain results file and open one panel per subdomain: (results, figure, [(axis, domain)])."""
    results = read_json(results_path)
    domains = domains_of(results)
    fig, axes = plt.subplots(1, len(domains), figsize=(width * len(domains), height), squeeze=False)
    return results, fig, list(zip(axes[0], domains))
