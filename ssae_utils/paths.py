"""Where things live on disk: caches, results and figures, per profile."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# the profile run_all.py and load_profile use when none is named (here: torch-free, for
# run_all.py --figures-only)
DEFAULT_PROFILE = "embedded"


FOLDER_VARIABLES = ("SSAE_CACHE", "SSAE_RESULTS", "SSAE_FIGURES", "SSAE_RUNS")


def check_folder_variables(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Each folder variable set in ``environ`` made absolute (relative to the current folder,
    not to wherever a kernel runs) and checked to be a writable folder; a clear error otherwise.
    Returns the variables to pass on."""
    env = os.environ if environ is None else environ
    out = {}
    for name in FOLDER_VARIABLES:
        raw = env.get(name)
        if not raw:
            continue
        path = Path(raw).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{name}={raw} is a file, not a folder: point it at a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise ValueError(f"{name}={raw}: cannot write there ({err.strerror or err}); point it at a writable folder") from None
        out[name] = str(path)
    return out


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
