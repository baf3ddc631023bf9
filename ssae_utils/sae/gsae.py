"""The general-purpose SAE (GSAE): trained with SAELens here, or loaded from a release.

Embedded/smoke profiles train a standard L1 SAE (SAELens ``standard`` architecture, its
decoder-norm-weighted L1) on cached general-pool activations, with SAELens' own
``SAETrainer`` fed from memory. The activation-norm scaling factor that SAELens estimates is
folded into the weights before saving, so the saved SAE reads raw residuals. The result is
saved in SAELens format (cfg.json + sae_weights.safetensors) and loads with
``sae_lens.SAE.load_from_disk``; ``load_sae`` reads it back as an ``SAEHandle``, the one
object every later stage uses. The paper profile loads ``gemma-2b-res-jb``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import torch
from sae_lens import SAE
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from ssae_utils.device import resolve_train_dtype
from ssae_utils.sae.config import GSAEConfig
from ssae_utils.sae.handle import SAEHandle
from ssae_utils.integrity import CorruptCacheError, verify_folder, write_checksums
from ssae_utils.io import stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir
from ssae_utils.sae.outliers import NormThreshold

log = logging.getLogger(__name__)

TRAINING_INFO = "ssae_training.json"


def shuffled_batches(acts: torch.Tensor, batch_size: int, seed: int, device: str = "cpu") -> Iterator[torch.Tensor]:
    """Endless iterator of shuffled batches (copied to ``device``): a new permutation every
    pass over ``acts``, drawn on the host so the order is the same on every device."""
    if acts.shape[0] < batch_size:
        raise ValueError(
            f"only {acts.shape[0]} training tokens for a batch of {batch_size}: cache more tokens "
            f"(gsae.pool_tokens) or lower gsae.batch_size"
        )
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(acts.shape[0], generator=gen)
        for start in range(0, acts.shape[0] - batch_size + 1, batch_size):
            yield acts[order[start : start + batch_size]].to(device)


# Knobs added for the pretrained-GSAE path (source="pretrained"): they never touch a GSAE we
# train, so its cache key leaves them out, and GSAEs trained before they existed keep their keys
# (pretrained_release / pretrained_sae_id were always in the key, as None).
PRETRAINED_ONLY = ("pretrained_path", "calibration_lambdas", "calibration_steps", "calibration_batch_size",
                   "calibration_lr")


def gsae_cache_key(cfg: GSAEConfig, data_key: str, hook_name: str, d_in: int, device: str) -> str:
    """Everything a trained GSAE depends on: its training knobs (train_dtype as it resolves on
    ``device``; float32 leaves it out, the key GSAEs trained before it existed have), data,
    hook and width."""
    training = {k: v for k, v in asdict(cfg).items() if k not in PRETRAINED_ONLY and k != "train_dtype"}
    train_dtype = resolve_train_dtype(cfg.train_dtype, device)
    if train_dtype != "float32":
        training["train_dtype"] = train_dtype
    return stable_hash({"gsae": training, "data": data_key, "hook": hook_name, "d_in": d_in})


def train_gsae(
    acts: torch.Tensor,
    cfg: GSAEConfig,
    hook_name: str,
    out_dir: Path,
    model_name: str = "",
    device: str = "cpu",
) -> tuple[SAEHandle, dict[str, Any]]:
    """Train a standard L1 SAE on ``acts`` [n_tokens, d_in] (host memory; batches are copied
    to ``device``, where the SAE trains), save it to ``out_dir`` and return it as loaded
    from there (the folded, raw-activation SAE, on ``device``)."""
    if acts.ndim != 2:
        raise ValueError(f"GSAE training expects activations [n_tokens, d_in], got {tuple(acts.shape)}")
    if not torch.isfinite(acts).all():
        raise FloatingPointError("training activations contain NaN/inf; recompute the activation cache")
    torch.manual_seed(cfg.seed)
    threshold = NormThreshold.fit(acts, cfg.outlier_norm_factor)
    outliers = threshold.is_outlier(acts)
    train_acts = acts[~outliers].contiguous()
    d_in = int(acts.shape[1])

    train_dtype = resolve_train_dtype(cfg.train_dtype, device)
    steps = cfg.train_tokens // cfg.batch_size
    if steps < 1:
        raise ValueError(f"gsae.train_tokens={cfg.train_tokens} is less than one batch of {cfg.batch_size}")
    sae_cfg = StandardTrainingSAEConfig(
        d_in=d_in,
        d_sae=cfg.d_sae,
        l1_coefficient=cfg.l1_coefficient,
        l1_warm_up_steps=int(cfg.l1_warm_up_fraction * steps),
        normalize_activations="expected_average_only_in",
        apply_b_dec_to_input=True,
        dtype="float32",
        device=device,
    )
    sae_cfg.metadata.hook_name = hook_name
    sae_cfg.metadata.model_name = model_name
    sae = StandardTrainingSAE(sae_cfg)
    decay_steps = int(cfg.lr_decay_fraction * steps)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * cfg.batch_size,
        train_batch_size_samples=cfg.batch_size,
        lr=cfg.lr,
        lr_end=0.0 if decay_steps else cfg.lr,
        lr_warm_up_steps=min(cfg.lr_warm_up_steps, steps // 2),
        lr_decay_steps=decay_steps,
        device=device,
        n_batches_for_norm_estimate=min(50, max(1, train_acts.shape[0] // cfg.batch_size)),
        dead_feature_window=max(10, steps // 4),
        feature_sampling_window=max(10, steps // 4),
        autocast=train_dtype == "bfloat16",   # SAELens: the forward pass in bf16, weights and Adam float32
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=shuffled_batches(train_acts, cfg.batch_size, cfg.seed, device))
    # SAELens' normalisation: scale inputs so their mean norm is sqrt(d_in). We set the
    # factor ourselves (over all training tokens) so we can record it; fit() folds it in.
    scaling_factor = (d_in**0.5) / float(train_acts.norm(dim=-1).mean())
    trainer.activation_scaler.scaling_factor = scaling_factor
    # Start the decoder bias at the data mean (in the scaled space the SAE trains in).
    # Residual streams carry a large shared direction (most of each token's norm); from
    # b_dec = 0 Adam needs thousands of steps to learn it, far more than a small budget has.
    with torch.no_grad():
        sae.b_dec.copy_(train_acts.mean(0).to(device) * scaling_factor)
    trained = trainer.fit()
    info = {
        "steps": steps,
        "train_tokens_seen": steps * cfg.batch_size,
        "unique_training_tokens": int(train_acts.shape[0]),
        "outliers": threshold.summary(acts),
        "norm_threshold": threshold.limit,
        "final_l0_train_window": float(trained.cfg.metadata.l0 or 0.0),
        "dead_features_train_window": int(trained.cfg.metadata.num_dead_features or 0),
        "l1_penalty": "sae_lens standard: L1 of feature activations weighted by decoder row norms",
        "normalization": "expected_average_only_in, folded into weights after training",
        "norm_scaling_factor": scaling_factor,
        "b_dec_init": "mean of the training activations",
        "config": asdict(cfg),
        "train_dtype": train_dtype,
    }
    save_sae(trained, out_dir, info)
    return load_sae(out_dir, device=device), info


def save_sae(sae: SAE | SAEHandle, out_dir: Path, info: dict[str, Any]) -> None:
    """Save in SAELens format, atomically: write to a temp folder, then rename."""
    if isinstance(sae, SAEHandle):
        sae = sae.to_saelens()
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(sae, "save_inference_model"):
        sae.save_inference_model(tmp)
    else:
        sae.save_model(tmp)
    write_json_atomic(tmp / TRAINING_INFO, info)
    # written last: a digest of every file, checked whenever the SAE is loaded
    write_checksums(tmp, [p.name for p in tmp.iterdir() if p.is_file()])
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def load_sae(path: Path, device: str = "cpu") -> SAEHandle:
    """The SAE saved in ``path`` (SAELens format) as the handle every stage uses.

    Its files are checked against the digests written with it, and its weights must be
    finite; a damaged SAE raises ``CorruptCacheError`` naming the folder (callers that can
    retrain it do; see ``pipeline.finetune.train_grid``)."""
    path = Path(path)
    if not (path / "cfg.json").exists():
        raise FileNotFoundError(f"no SAE at {path} (cfg.json missing); run notebook 00 to train the GSAE")
    verify_folder(path)
    try:
        handle = SAEHandle.load(path, device=device)
    except Exception as err:  # a truncated safetensors file, a garbled cfg.json
        raise CorruptCacheError(f"the SAE in {path} cannot be loaded ({type(err).__name__}: {err}); delete the "
                                f"folder and rerun the notebook that made it") from err
    bad = [name for name, t in handle.weights().items() if not torch.isfinite(t).all()]
    if bad:
        raise CorruptCacheError(f"the SAE in {path} has non-finite {', '.join(bad)}; delete the folder and rerun "
                                f"the notebook that made it")
    return handle


def read_training_info(path: Path) -> dict[str, Any]:
    info_path = Path(path) / TRAINING_INFO
    return json.loads(info_path.read_text()) if info_path.exists() else {}


def load_pretrained_gsae(release: str, sae_id: str, device: str = "cpu") -> SAE:
    """Load a SAELens release (paper profile: ``gemma-2b-res-jb``, layer 12).

    SAELens folds the release's activation-norm scaling factor when it knows it; if the
    loaded SAE still expects normalised inputs, the caller must estimate and fold the
    factor from real activations (``fold_norm_scaling``) before trusting its metrics. So
    this returns the SAELens SAE itself, not a handle (a handle refuses normalised inputs);
    the stages that read its weights wrap it with ``SAEHandle.from_sae``.
    """
    sae = SAE.from_pretrained(release, sae_id, device=device)
    sae.eval()
    return sae


@torch.no_grad()
def fold_norm_scaling(sae: SAE, acts: torch.Tensor) -> float | None:
    """Fold ``sqrt(d_in) / mean ||x||`` into an SAE that still normalises its inputs."""
    if sae.cfg.normalize_activations != "expected_average_only_in":
        return None
    factor = (sae.cfg.d_in**0.5) / float(acts.norm(dim=-1).mean())
    sae.fold_activation_norm_scaling_factor(factor)
    return factor


def gsae_dir(key: str) -> Path:
    return cache_dir("saes", "gsae") / key
