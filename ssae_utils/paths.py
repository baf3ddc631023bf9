"""Where things live on disk: caches, results and figures, per profile."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """Root of every content-addressed cache (downloads, models, activations, SAEs).

    ``SSAE_CACHE`` overrides the default ``<repo>/.cache`` (ignored by git), which lets tests
    use a temporary folder and lets a GPU box point at a large scratch disk.
    """
    root = Path(os.environ.get("SSAE_CACHE", REPO_ROOT / ".cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str) -> Path:
    """``results/<profile>/``: the JSON/CSV files that figures and later notebooks read."""
    root = Path(os.environ.get("SSAE_RESULTS", REPO_ROOT / "results"))
    path = root / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(profile: str) -> Path:
    root = Path(os.environ.get("SSAE_FIGURES", REPO_ROOT / "figures"))
    path = root / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_relative(path: Path) -> str:
    """``path`` relative to the cache root (results files must not hold machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(cache_root().resolve()))
    except ValueError:
        return str(path)
