"""Stage 00: corpora, model sanity checks, activation cache and the general SAE (GSAE).

``run_foundation(cfg)`` does the whole stage and writes ``results/<profile>/00_setup.json``;
the smaller functions are there so a reader (or notebook) can run one step at a time.
Everything expensive is cached by content, so a rerun only reads files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ssae_utils.activations import ActivationStore
from ssae_utils.config import ProfileConfig, resolve_context_length
from ssae_utils.data.card import data_card
from ssae_utils.data.corpora import Corpora, build_corpora
from ssae_utils.data.documents import Document
from ssae_utils.data.splitting import sample_whole_documents
from ssae_utils.integrity import CorruptCacheError
from ssae_utils.io import stable_hash
from ssae_utils.model.hooked import HookedLM
from ssae_utils.model.reference import compare_with_hf
from ssae_utils.model.registry import load_model
from ssae_utils.paths import cache_relative
from ssae_utils.results import GsaeBlock, SetupResults, read_stage, write_results
from ssae_utils.sae.evaluation import (
    ce_loss_recovered,
    feature_firing_rates,
    reconstruction_stats,
    sae_splice,
    spliced_ce,
    zero_splice,
)
from ssae_utils.sae.calibration import calibrate_lambda_l0, window_lambdas
from ssae_utils.sae.gsae import gsae_cache_key, gsae_dir, load_sae, read_training_info, save_sae, train_gsae
from ssae_utils.sae.handle import SAEHandle
from ssae_utils.sae.pretrained import check_matches_model, describe_release, input_space, load_pretrained, source_key
from ssae_utils.sae.outliers import NormThreshold
from ssae_utils.token_counts import document_token_counts

log = logging.getLogger(__name__)

RESULTS_FILE = SetupResults.FILE


@dataclass
class World:
    """What every later stage starts from: config, corpora, model and activation cache."""

    cfg: ProfileConfig
    corpora: Corpora
    model: HookedLM
    store: ActivationStore

    def count_tokens(self, docs: Sequence[Document]) -> list[int]:
        """LM token counts of ``docs`` (cached per tokenizer, shared with later stages)."""
        return document_token_counts(docs, self.model.tokenizer, self.model.fingerprint)


def load_world(cfg: ProfileConfig) -> World:
    # model.context_length=None: the pretrained GSAE's context size; stage 00 may download the
    # release's cfg.json for it (later stages read it from the cache: ``resolve_context_length``)
    cfg = resolve_context_length(cfg, download=True)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    store = ActivationStore(model, cfg.activations)
    return World(cfg, corpora, model, store)


def take_tokens(docs: Sequence[Document], counts: Sequence[int], budget: int, seed: int) -> list[Document]:
    """A seeded random sample of ``docs`` holding about ``budget`` tokens (whole documents).

    ``counts`` are the documents' LM token counts; each context also gets a BOS token.
    """
    picked, total = sample_whole_documents(docs, lambda i: counts[i] + 1, budget, seed)
    if total < budget:
        log.warning("only %d tokens available, %d requested", total, budget)
    return picked


def gsae_training_docs(world: World) -> list[Document]:
    docs = world.corpora["general_pool"]
    return take_tokens(docs, world.count_tokens(docs), world.cfg.gsae.pool_tokens, world.cfg.gsae.seed)


def heldout_docs(world: World) -> list[Document]:
    docs = world.corpora["general_heldout"]
    return take_tokens(docs, world.count_tokens(docs), world.cfg.gsae.eval_tokens, world.cfg.seed + 1)


def get_pretrained_gsae(world: World) -> tuple[Any, Path, dict[str, Any]]:
    """Load the pretrained GSAE, check it fits the model, define its input space and lambda
    from held-out general tokens (``ssae_utils.sae.pretrained``), run the lambda -> L0
    calibration when ``gsae.calibration_lambdas`` is set, and save it with that training
    info in the cache; returns (handle, folder, training info)."""
    cfg = world.cfg.gsae
    heldout = heldout_docs(world)
    calib_docs = gsae_training_docs(world) if cfg.calibration_lambdas else []
    key = stable_hash({
        "pretrained": source_key(cfg), "store": world.store.key, "outlier_norm_factor": cfg.outlier_norm_factor,
        "heldout": sorted(d.doc_id for d in heldout), "calibration_docs": sorted(d.doc_id for d in calib_docs),
        "calibration": [cfg.calibration_lambdas, cfg.calibration_steps, cfg.calibration_batch_size, cfg.calibration_lr, cfg.seed],
        "windows": {name: d.l0_window for name, d in world.cfg.domains.items()},
    })
    folder = gsae_dir(f"pretrained-{key}")
    if (folder / "cfg.json").exists():
        try:
            return load_sae(folder, device=world.cfg.model.resolved_device), folder, read_training_info(folder)
        except CorruptCacheError as err:
            log.warning("%s; loading the pretrained GSAE again", err)
    gsae = load_pretrained(cfg, device=world.cfg.model.resolved_device)  # SAE work runs on model.device
    notes = check_matches_model(gsae, world.model.hook_name, world.model.d_model, world.model.name,
                                world.model.context_length)
    for note in notes:
        log.warning("pretrained GSAE: %s", note)
    if gsae.sae.cfg.d_sae != cfg.d_sae:
        log.warning("gsae.d_sae=%d but the pretrained GSAE has %d features; using the GSAE's", cfg.d_sae, gsae.sae.cfg.d_sae)
    acts = world.store.load([d.text for d in heldout], exclude_bos=True, desc="caching held-out activations").acts
    info = {**describe_release(gsae), **input_space(gsae, acts, cfg.outlier_norm_factor), "notes": notes}
    handle = SAEHandle.from_sae(gsae.sae)  # the weights after any fold, in canonical form
    if cfg.calibration_lambdas:
        pool = world.store.load([d.text for d in calib_docs], exclude_bos=True, desc="caching general-pool activations").acts
        threshold = NormThreshold.from_training_info(info, cfg.outlier_norm_factor)
        keep_pool = ~threshold.is_outlier(pool) if threshold else torch.ones(len(pool), dtype=torch.bool)
        keep_held = ~threshold.is_outlier(acts) if threshold else torch.ones(len(acts), dtype=torch.bool)
        calibration = calibrate_lambda_l0(handle, pool[keep_pool], acts[keep_held], info["norm_scaling_factor"],
                                          cfg.calibration_lambdas, cfg.calibration_steps, cfg.calibration_batch_size,
                                          cfg.calibration_lr, cfg.seed)
        calibration["lambda_for_l0_window"] = window_lambdas(
            calibration, {name: d.l0_window for name, d in world.cfg.domains.items()})
        info["lambda_l0_calibration"] = calibration
    save_sae(gsae.sae, folder, info)
    return load_sae(folder, device=world.cfg.model.resolved_device), folder, info


def get_gsae(world: World) -> tuple[Any, Path, dict[str, Any]]:
    """Train (or load from cache) the GSAE; returns (sae, folder, training info)."""
    cfg = world.cfg.gsae
    if cfg.source == "pretrained":
        return get_pretrained_gsae(world)
    docs = gsae_training_docs(world)
    texts = [d.text for d in docs]
    data_key = stable_hash({"store": world.store.key, "docs": sorted(d.doc_id for d in docs)})
    folder = gsae_dir(gsae_cache_key(cfg, data_key, world.model.hook_name, world.model.d_model,
                                     world.cfg.model.resolved_device))
    if (folder / "cfg.json").exists():
        log.info("GSAE found in cache: %s", folder)
        try:
            # the same training info as a cold run writes (its document count is not in the folder)
            return load_sae(folder, device=world.cfg.model.resolved_device), folder, {**read_training_info(folder), "training_documents": len(docs)}
        except CorruptCacheError as err:
            log.warning("%s; training the GSAE again", err)
    acts = world.store.load(texts, exclude_bos=True, desc="caching general-pool activations").acts
    sae, info = train_gsae(acts, cfg, world.model.hook_name, folder, model_name=world.model.name,
                           device=world.cfg.model.resolved_device)
    info["training_documents"] = len(docs)
    return sae, folder, info


def evaluate_gsae(world: World, sae: Any, info: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    """Held-out L0, FVU, dead features, spliced CE (absolute and recovered), feature density."""
    texts = [d.text for d in heldout_docs(world)]
    acts = world.store.load(texts, exclude_bos=True, desc="caching held-out activations").acts
    threshold = NormThreshold.from_training_info(info, world.cfg.gsae.outlier_norm_factor)
    inlier = ~threshold.is_outlier(acts) if threshold else torch.ones(len(acts), dtype=torch.bool)
    stats = reconstruction_stats(sae, acts[inlier])
    tokens, lengths = world.store.contexts(texts)
    ce = spliced_ce(
        world.model,
        tokens,
        lengths,
        {"sae": sae_splice(sae, threshold), "zero": zero_splice()},
        batch_size=world.cfg.activations.batch_size,
    )
    heldout = {
        **stats.to_dict(),
        "n_outlier_tokens_excluded": int((~inlier).sum()),
        "ce_clean": ce["clean"],
        "ce_sae": ce["sae"],
        "ce_zero_ablation": ce["zero"],
        "ce_loss_recovered": ce_loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
        "eval_tokens": int(lengths.sum()),
        "eval_contexts": int(tokens.shape[0]),
    }
    return heldout, feature_firing_rates(sae, acts)


def run_foundation(cfg: ProfileConfig) -> SetupResults:
    """The whole of stage 00; returns and saves its results."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    world = load_world(cfg)
    cfg = world.cfg  # model.context_length resolved (None: the pretrained GSAE's)
    timings["load_corpora_and_model_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    # per split, aligned with its documents: no list of every document or text (arrow storage)
    counts = {name: world.count_tokens(docs) for name, docs in world.corpora.items()}
    card = data_card(world.corpora, domains=list(cfg.domains), counts=counts)
    timings["data_card_s"] = time.perf_counter() - t

    t = time.perf_counter()
    probe_texts = [d.text for d in world.corpora["general_heldout"][:4]]
    sanity = world.model.sanity_checks(probe_texts)
    sanity.update(compare_with_hf(cfg.model, world.model, probe_texts))
    timings["model_sanity_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sae, folder, info = get_gsae(world)
    timings["gsae_train_or_load_s"] = time.perf_counter() - t

    t = time.perf_counter()
    heldout, feature_density = evaluate_gsae(world, sae, info)
    timings["gsae_eval_s"] = time.perf_counter() - t

    results = SetupResults(
        profile=cfg.name,
        config_hash=cfg.hash(),
        config=cfg.to_dict(),
        data_card=card,
        # general documents dropped because a subdomain's split holds the same text
        pool_removals=dict(world.corpora.pool_removals),
        model={
            "name": world.model.name,
            "hook_name": world.model.hook_name,
            "d_model": world.model.d_model,
            "n_layers": world.model.n_layers,
            "vocab_size": world.model.vocab_size,
            "fingerprint": world.model.fingerprint,
            # model.dtype "auto" resolved on this machine (bf16 where the CPU multiplies it natively)
            "dtype": str(world.model.dtype).removeprefix("torch."),
            "sanity": sanity,
        },
        activation_store={"key": world.store.key, "folder": cache_relative(world.store.root)},
        gsae=GsaeBlock(
            folder=cache_relative(folder),  # under $SSAE_CACHE (default .cache/)
            training=info,
            heldout=heldout,
            feature_density=feature_density,
        ),
        timings={k: round(v, 2) for k, v in timings.items()},
    )
    write_results(cfg, results)
    return results


def load_saved_gsae(cfg: ProfileConfig) -> tuple[Any, SetupResults]:
    """The GSAE that stage 00 saved (read from its results file, never from memory)."""
    from ssae_utils.paths import cache_root

    results = read_stage(cfg, SetupResults)  # refuses a 00_setup.json made with other settings (lineage)
    folder = cache_root() / results.gsae.folder
    rebuild = f"python run_all.py --profile {cfg.name} --only 00 --force"
    if not (folder / "cfg.json").exists():
        raise FileNotFoundError(
            f"the GSAE recorded in 00_setup.json is not in this machine's cache ({folder}); rerun notebook 00 with `{rebuild}`"
        )
    try:
        return load_sae(folder, device=cfg.model.resolved_device), results
    except CorruptCacheError as err:
        raise CorruptCacheError(f"{err} -- notebook 00 retrains it: `{rebuild}`") from err
