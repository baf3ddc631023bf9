"""A pretrained GSAE (gsae.source="pretrained"): loading it and defining its input space.

A GSAE trained here comes with our own training record: the activation scale it was trained
at (``norm_scaling_factor``), its outlier threshold and its lambda. A pretrained one
(``gemma-2b-res-jb`` in the paper profile, or a local SAELens folder) comes with none of
them, so stage 00 derives them, once, and records them in 00_setup.json
(``gsae.training``), where every later stage reads them (``pipeline.upstream.gsae_input_space``,
``pipeline.tracin.tracin_settings``):

* ``norm_scaling_factor`` (act_scale, 1/activation units): the SSAEs train on activations
  times act_scale (``sae/finetune.py``). For a release trained with SAELens'
  ``expected_average_only_in`` it is the factor folded into the weights (the release's own
  training space: lambda then means what it meant for the release); for one trained on raw
  activations (``normalize_activations="none"``, gemma-2b-res-jb) it is
  sqrt(d_in) / mean ||x|| over the held-out general tokens (outliers left out), the SAELens
  convention our own GSAEs train in. Either way lambda of the sweep is in the same units:
  activations scaled to mean norm sqrt(d_in).
* the outlier threshold: ``gsae.outlier_norm_factor`` x the median held-out norm (None: no
  threshold, the paper profile), recorded as ``outliers`` / ``norm_threshold`` like ours.
* lambda: the release's ``l1_coefficient`` if its cfg.json has one, converted to raw
  activation units (``l1_coefficient_raw``, what TracIn differentiates) and to the sweep's
  units (``l1_coefficient_scaled`` = raw x act_scale: the MSE scales as act_scale^2 and the
  decoder-norm-weighted L1 as act_scale, so the same SAE is optimal for lambda_raw in raw
  units and act_scale x lambda_raw in scaled ones).

The SAE is saved in its own parametrisation (apply_b_dec_to_input=False stays False):
``SAEHandle`` folds b_dec into b_enc when it loads it, and maps gradients back to these
parameters for TracIn (``SAEHandle.to_source_grad``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens import SAE

from ssae_utils.integrity import file_digest
from ssae_utils.sae.config import GSAEConfig
from ssae_utils.sae.outliers import NormThreshold
from ssae_utils.sae.pretrained_cfg import (
    WEIGHTS_FILE,
    cfg_value,
    context_size,
    declared_normalization,
    describe,
    local_folder,
    read_raw_cfg,
)

log = logging.getLogger(__name__)

FOLDABLE = ("none", "expected_average_only_in")  # normalisations a weight fold can undo


@dataclass
class PretrainedGSAE:
    """A pretrained SAE as loaded, with what its release says about how it was trained."""

    sae: Any                          # SAELens SAE in the release's parametrisation
    raw_cfg: dict[str, Any]           # its cfg.json as written (``pretrained_cfg.read_raw_cfg``)
    origin: dict[str, Any]            # release + sae_id, or the local folder and weight digest
    normalization: str                # what it was trained with (SAELens >= 6 names)
    folded_factor: float | None       # scaling factor SAELens already folded in (release table)
    table_factor: float | None        # SAELens' pretrained_saes.yaml factor, folded or not

    @property
    def context_size(self) -> int | None:
        return context_size(self.raw_cfg)

    @property
    def hook_name(self) -> str | None:
        return getattr(self.sae.cfg.metadata, "hook_name", None) or cfg_value(self.raw_cfg, "hook_name") \
            or cfg_value(self.raw_cfg, "hook_point")


def source_key(cfg: GSAEConfig) -> dict[str, Any]:
    """What identifies the pretrained weights (cache keys): a release, or a local folder's files."""
    if cfg.pretrained_path:
        folder = local_folder(cfg)
        return {"path_weights": file_digest(folder / WEIGHTS_FILE), "path_cfg": file_digest(folder / "cfg.json")}
    return {"release": cfg.pretrained_release, "sae_id": cfg.pretrained_sae_id}


def load_pretrained(cfg: GSAEConfig, device: str = "cpu") -> PretrainedGSAE:
    """Load the pretrained GSAE ``cfg`` names (hub release or ``gsae.pretrained_path``)."""
    raw = read_raw_cfg(cfg, download=True) or {}
    normalization = declared_normalization(raw)
    if normalization not in FOLDABLE:
        raise ValueError(f"the pretrained GSAE ({describe(cfg)}) normalises its inputs with "
                         f"normalize_activations={normalization!r}, which no weight fold undoes; supported: {list(FOLDABLE)}")
    if cfg.pretrained_path:
        folder = local_folder(cfg)
        sae = SAE.load_from_disk(str(folder), device=device).eval()
        origin = {"path": str(folder.resolve()), **source_key(cfg)}
        table = folded = None
    else:
        from sae_lens.loading.pretrained_saes_directory import get_norm_scaling_factor

        from ssae_utils.sae.gsae import load_pretrained_gsae

        sae = load_pretrained_gsae(cfg.pretrained_release, cfg.pretrained_sae_id, device=device)
        table = get_norm_scaling_factor(cfg.pretrained_release, cfg.pretrained_sae_id)
        # SAELens folds the table's factor when the release normalised its inputs
        folded = table if normalization == "expected_average_only_in" and sae.cfg.normalize_activations == "none" else None
        origin = {"release": cfg.pretrained_release, "sae_id": cfg.pretrained_sae_id}
    return PretrainedGSAE(sae, raw, origin, normalization, folded, table)


def check_matches_model(gsae: PretrainedGSAE, hook_name: str, d_model: int, model_name: str,
                        context_length: int) -> list[str]:
    """Refuse a pretrained GSAE that reads another hook, width or context than the model
    (one-line errors naming both values and the knob). A context shorter than the SAE's is
    allowed (every position of it was in the SAE's training contexts) and returned as a note;
    a longer one is refused (positions the SAE never saw)."""
    d_in = int(gsae.sae.cfg.d_in)
    if gsae.hook_name and gsae.hook_name != hook_name:
        raise ValueError(f"the pretrained GSAE reads {gsae.hook_name} but the model is hooked at {hook_name}: set "
                         "model.hook_layer to the GSAE's layer or choose another gsae.pretrained_sae_id / gsae.pretrained_path")
    if d_in != d_model:
        raise ValueError(f"the pretrained GSAE has d_in={d_in} but {model_name} has d_model={d_model}: it was trained "
                         "on another model; set model.name or choose another gsae.pretrained_release / gsae.pretrained_path")
    notes = []
    size = gsae.context_size
    if size is not None and context_length > size:
        raise ValueError(f"model.context_length={context_length} is longer than the {size}-token contexts the pretrained "
                         f"GSAE was trained on: set model.context_length <= {size} (null: the GSAE's)")
    if size is not None and context_length < size:
        notes.append(f"model.context_length={context_length} is shorter than the GSAE's training contexts ({size} tokens)")
    if size is None:
        notes.append("the GSAE's cfg.json gives no context_size: model.context_length is unchecked")
    return notes


@torch.no_grad()
def input_space(gsae: PretrainedGSAE, heldout: torch.Tensor, outlier_norm_factor: float | None) -> dict[str, Any]:
    """Fold any remaining input normalisation into ``gsae.sae`` and return the training-info
    entries that define the SSAEs' input space and lambda (module docstring), estimated on
    ``heldout`` [n_tokens, d_in] raw general activations (BOS left out)."""
    if heldout.ndim != 2 or heldout.shape[0] == 0 or not torch.isfinite(heldout).all():
        raise ValueError(f"held-out activations must be finite [n_tokens, d_in], got {tuple(heldout.shape)}")
    sae = gsae.sae
    d_in = int(sae.cfg.d_in)
    threshold = NormThreshold.fit(heldout, outlier_norm_factor)
    inliers = heldout[~threshold.is_outlier(heldout)]
    mean_norm = float(inliers.norm(dim=-1).mean())
    estimated = d_in**0.5 / mean_norm
    if sae.cfg.normalize_activations == "expected_average_only_in":  # nobody folded it yet: fold our estimate
        sae.fold_activation_norm_scaling_factor(estimated)
        act_scale, scale_source = estimated, "expected_average_only_in, factor estimated on held-out tokens and folded"
    elif gsae.folded_factor is not None:
        act_scale, scale_source = gsae.folded_factor, "expected_average_only_in, factor of the release table folded by SAELens"
    else:
        act_scale, scale_source = estimated, "sqrt(d_in) / mean held-out norm (the SAE reads raw activations)"

    release_lambda = cfg_value(gsae.raw_cfg, "l1_coefficient")
    if isinstance(release_lambda, (int, float)) and math.isfinite(release_lambda):
        # the release's lambda is in its own training space: scaled for expected_average_only_in
        trained_scale = act_scale if gsae.normalization == "expected_average_only_in" else 1.0
        lam_raw = float(release_lambda) / trained_scale
        lam_info = {"l1_coefficient_release": float(release_lambda), "l1_coefficient_raw": lam_raw,
                    "l1_coefficient_scaled": lam_raw * act_scale,
                    "l1_coefficient_source": f"l1_coefficient {release_lambda:g} of the release's cfg.json"}
    else:
        lam_info = {"l1_coefficient_release": None, "l1_coefficient_raw": None, "l1_coefficient_scaled": None,
                    "l1_coefficient_source": "unknown: the release's cfg.json has no l1_coefficient"}
    return {
        "norm_scaling_factor": act_scale,
        "norm_scaling_factor_source": scale_source,
        "norm_scaling_factor_estimated": estimated,
        "release_table_norm_scaling_factor": gsae.table_factor,
        "heldout_mean_norm": mean_norm,
        "heldout_tokens": int(heldout.shape[0]),
        "outliers": threshold.summary(heldout),
        "norm_threshold": threshold.limit,
        **lam_info,
        "units": "lambda in activations scaled by norm_scaling_factor (mean norm sqrt(d_in)); "
                 "l1_coefficient_raw in raw activation units",
    }


def describe_release(gsae: PretrainedGSAE) -> dict[str, Any]:
    """The release's own settings, as recorded in 00_setup.json."""
    cfg = gsae.sae.cfg
    keep = ("lr", "training_tokens", "train_batch_size_tokens", "scale_sparsity_penalty_by_decoder_norm",
            "mse_loss_normalization", "normalize_sae_decoder", "model_name", "dataset_path")
    return {
        "source": "pretrained",
        **gsae.origin,
        "architecture": cfg.architecture(),
        "d_in": int(cfg.d_in),
        "d_sae": int(cfg.d_sae),
        "hook_name": gsae.hook_name,
        "context_size": gsae.context_size,
        "apply_b_dec_to_input": bool(cfg.apply_b_dec_to_input),
        "normalize_activations_declared": gsae.normalization,
        "release_cfg": {k: cfg_value(gsae.raw_cfg, k) for k in keep if cfg_value(gsae.raw_cfg, k) is not None},
    }
