"""What a stage reads from earlier stages: their saved results, and the GSAE's input space.

Results files are named after the notebook that writes them (``03_finetune.json`` comes
from notebook 03; the names and schemas are in ``ssae_utils.results``), so a missing one is
reported with the command that produces it.
"""

from __future__ import annotations

from typing import Any

from ssae_utils.io import read_json
from ssae_utils.paths import results_dir
from ssae_utils.results import missing_error, read_stage  # noqa: F401  (read_stage: the typed reader)
from ssae_utils.sae.outliers import NormThreshold


def read_results(profile: str, name: str) -> dict[str, Any]:
    """``results/<profile>/<name>`` as a plain dict (unchecked), or an error naming the
    notebook to run first. Stages read each other through ``read_stage`` (typed, checked)."""
    path = results_dir(profile) / name
    if not path.exists():
        raise missing_error(profile, name)
    return read_json(path)


def gsae_input_space(training: dict[str, Any], outlier_norm_factor: float | None) -> tuple[float, NormThreshold | None]:
    """From the GSAE's training info (00_setup.json ``gsae.training``): the activation scale
    act_scale (1/activation units) the SSAEs train at, and the outlier-norm threshold.

    A GSAE trained here records the factor it was trained at; a pretrained one the factor
    stage 00 derived (``ssae_utils.sae.pretrained``: the release's folded factor, or
    sqrt(d_in) / mean held-out norm), so for both the sweep's lambdas are in activations
    scaled to mean norm sqrt(d_in). 1.0 only for old results that recorded no factor."""
    act_scale = float(training.get("norm_scaling_factor") or training.get("norm_scaling_factor_estimated") or 1.0)
    return act_scale, NormThreshold.from_training_info(training, outlier_norm_factor)
