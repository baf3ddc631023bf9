"""Lineage: which config sections and which earlier results a stage's results were made from.

One mechanism serves ``run_all.py`` (is a notebook up to date?) and the stages (may I read
this file?). A notebook numbered NN depends on the config sections first read by stage NN or
earlier (``SECTION_STAGE``) and on every earlier notebook's results file. Each results file
records both (``lineage``: the config sections, the SHA-256 of each upstream file), and a
stage that reads it checks them against the current run: a file made with other knobs, or
from upstream results that have changed since, is refused with the knobs that differ and the
notebook to rerun, instead of being mixed silently into this run's results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ssae_utils.io import sha256_file

# The stage that first reads each config section. A section missing here counts as read by
# 00, so every notebook depends on it.
SECTION_STAGE = {"name": "00", "seed": "00", "data": "00", "domains": "00", "model": "00", "activations": "00",
                 "gsae": "00", "retrieval": "01", "finetune": "03", "tail": "05", "autointerp": "06", "bios": "07"}


class LineageError(ValueError):
    """A results file made with other settings, or from other upstream results, than this run's."""


def config_for(number: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config sections notebook ``number`` can depend on (JSON-shaped)."""
    plain = json.loads(json.dumps(dict(config)))
    return {key: value for key, value in plain.items() if SECTION_STAGE.get(key, "00") <= number}


def upstream_files(number: str, results_folder: Path) -> list[Path]:
    """Results files written by notebooks numbered before ``number``."""
    return sorted(p for p in Path(results_folder).glob("*") if p.is_file() and p.name[:2].isdigit() and p.name[:2] < number)


def lineage_of(number: str, config: Mapping[str, Any], results_folder: Path) -> dict[str, Any]:
    """What a results file of notebook ``number`` records about its inputs."""
    return {"config": config_for(number, config),
            "upstream": {p.name: sha256_file(p) for p in upstream_files(number, results_folder)}}


def differing_knobs(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted knobs whose values differ (``gsae.l1_coefficient: 2.0 -> 1.0``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differing_knobs(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {json.dumps(old)} -> {json.dumps(new)} (this run)"]


def check_lineage(file: str, number: str, recorded: Mapping[str, Any] | None, config: Mapping[str, Any],
                  results_folder: Path, profile: str) -> None:
    """Refuse ``file`` (written by notebook ``number``) unless it was made with this run's
    config sections and from the upstream results now on disk."""
    rerun = f"python run_all.py --profile {profile} --from {number}"
    if not recorded:
        raise LineageError(f"{file} records no lineage (written by an older version of notebook {number}): {rerun}")
    knobs = differing_knobs(recorded.get("config", {}), config_for(number, config))
    if knobs:
        first = min(SECTION_STAGE.get(k.split(".")[0].split(":")[0], "00") for k in knobs)
        shown = "; ".join(knobs[:6]) + (f"; and {len(knobs) - 6} more" if len(knobs) > 6 else "")
        raise LineageError(f"{file} was made with other settings than this run's: {shown}. Rerun from notebook {first} "
                           f"with this run's settings (python run_all.py --profile {profile} --from {first} plus the "
                           f"same --set options), or run this notebook with the settings it was made with")
    now = {p.name: sha256_file(p) for p in upstream_files(number, results_folder)}
    changed = sorted(name for name, digest in recorded.get("upstream", {}).items() if now.get(name) != digest)
    if changed:
        raise LineageError(f"{file} was made from other versions of {', '.join(changed)} than those on disk now "
                           f"(they were rewritten since): {rerun}")
