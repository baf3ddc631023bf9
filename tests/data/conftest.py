"""Data-layer test fixtures: every test gets a private, empty cache unless it asks otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ssae_utils.data.artifacts import ARTIFACTS
from ssae_utils.paths import REPO_ROOT

# The user's real cache, captured before any test redirects SSAE_CACHE: embedded-source tests
# read pinned artifacts from it when they were downloaded earlier (and skip otherwise).
REAL_CACHE = Path(os.environ.get("SSAE_CACHE", REPO_ROOT / ".cache"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSAE_CACHE", str(cache))
    return cache


def cached_artifacts() -> dict[str, Path]:
    folder = REAL_CACHE / "artifacts"
    return {name: folder / art.filename for name, art in ARTIFACTS.items()
            if (folder / art.filename).is_file()}


@pytest.fixture
def real_artifacts(private_cache):
    """Link the already-downloaded artifacts into the private cache, or skip."""
    found = cached_artifacts()
    missing = sorted(set(ARTIFACTS) - set(found))
    if missing:
        pytest.skip(f"pinned artifacts {missing} not in {REAL_CACHE / 'artifacts'}; run "
                    f"`python -c 'from ssae_utils.data import *; build_corpora(DataConfig.embedded())'` "
                    f"once with registry access")
    target = private_cache / "artifacts"
    target.mkdir(parents=True, exist_ok=True)
    for path in found.values():
        (target / path.name).symlink_to(path)
    return target
