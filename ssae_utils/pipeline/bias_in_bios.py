"""Stage 07: removing a spurious gender signal with SAE features (Bias in Bios, SHIFT).

The case study of the paper's abstract versions (protocol: Marks et al., Sparse Feature
Circuits). A profession probe is trained on an *ambiguous* set where gender predicts the
profession perfectly; SAE features that carry gender are zero-ablated (error term kept) and
the probe is re-evaluated on a *balanced* test set: profession accuracy, gender accuracy
(ideal 50%) and worst-group accuracy, with and without refitting the probe head. Compared:
the GSAE, SSAEs specialized to biographies (seed bios -> dense retrieval -> finetune, one
per selection seed), and both sliced to 1/8 of their features; baselines: the original
probe, an oracle probe trained on balanced data, and ablating random features. Also SAEBench's
automatic variant (SCR) for several N.

The profession probe reads the residual after ``bios.probe_layer`` (a late block, picked
among ``bios.probe_layer_candidates`` by the original probe's gender accuracy on the balanced
test set: ``ssae_utils.bios.calibration``), mean-pooled; SHIFT's ablations act at the SAE's
hook (error term kept) and run through the blocks in between (``ssae_utils.bios.propagate``),
and attribution is taken by autograd through those blocks. The ambiguous training set holds
real documents only. SCR stays at the SAE's layer (SAEBench's setup: its probes read the
SAE's own layer), with its own hook-layer profession, oracle and gender probes.

``run_bias_in_bios(cfg)`` writes ``results/<profile>/07_bias_in_bios.json``; the figure is
drawn from that file (``ssae_utils.plots.bias_in_bios``). The pieces live in ``ssae_utils.bios``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from ssae_utils.progress import tqdm

from ssae_utils.bios.attribution import shift_scores
from ssae_utils.bios.audit import top_tokens
from ssae_utils.bios.calibration import selection_record, wilson_interval
from ssae_utils.bios.propagate import (
    HookContexts, hook_gradients, pooled_at_layers, pooled_probe_resid, sae_ablation, shift_scores_through,
)
from ssae_utils.bios.compress import compressed_width, slice_features, slice_sae
from ssae_utils.bios.config import BiosStudyConfig
from ssae_utils.bios.data import (
    CounterfactualPairs, LabelledSet, ambiguous_set, balanced_set, counterfactual_pairs, hard_text_view,
)
from ssae_utils.bios.metrics import METRICS, bootstrap_ci, shift_metrics, summarize
from ssae_utils.bios.pooling import DocTokens, pooled_features, pooled_residuals
from ssae_utils.bios.probe import LinearProbe, fit_probe
from ssae_utils.bios.scr import scr_effects, scr_score, top_latents
from ssae_utils.bios.selection import gender_share, select_gender_features
from ssae_utils.bios.shift import ablate_and_evaluate, ablate_pooled, random_features
from ssae_utils.bios.ssae import dense_selection, seed_bios, training_documents
from ssae_utils.config import ProfileConfig
from ssae_utils.io import atomic_path, read_json
from ssae_utils.device import resolve_train_dtype
from ssae_utils.data.corpora import Corpora
from ssae_utils.data.documents import Document
from ssae_utils.results import TABLE1_MD, TABLE1_TEX, BiasInBiosResults, write_results
from ssae_utils.pipeline.upstream import gsae_input_space
from ssae_utils.pipeline.finetune import train_grid
from ssae_utils.pipeline.foundation import World, load_saved_gsae, load_world
from ssae_utils.retrieval import Selection, dense_index_from_config, embed_cached, embed_pool, embedder_from_config
from ssae_utils.sae.evaluation import reconstruction_stats
from ssae_utils.sae.finetune import FinetuneConfig
from ssae_utils.sae.handle import as_handle
from ssae_utils.sae.outliers import NormThreshold

log = logging.getLogger(__name__)

RESULTS_FILE = BiasInBiosResults.FILE

# The abstract versions' numbers (Pythia-70M, Marks et al.'s setup; CLAIMS.md, C9):
# worst-group accuracy. Quoted for comparison only, never used in a computation. The source
# does not say whether its compressed numbers are with or without retraining.
PAPER_REFERENCE = {
    "model": "Pythia-70M (Marks et al. Sparse Feature Circuits setup)",
    "dataset": "Bias in Bios, professor (male) vs nurse (female)",
    "worst_group_acc": {"GSAE SHIFT": 0.760, "SSAE SHIFT": 0.885, "GSAE SHIFT + retrain": 0.890,
                        "SSAE SHIFT + retrain": 0.895, "GSAE 1/8 SHIFT": 0.486, "SSAE 1/8 SHIFT": 0.788},
}

# Row order of the table (and the figure).
BASELINE_ROWS = ("Original", "Oracle", "Random", "Random + retrain")


# ------------------------------------------------------------------ data
@dataclass
class StudyData:
    test: LabelledSet
    ambiguous: dict[int, LabelledSet]          # per probe seed
    balanced: dict[int, LabelledSet]           # per probe seed (oracle and SCR gender probe)
    pairs: dict[int, CounterfactualPairs]      # per probe seed (the gender criterion)

    def all_texts(self) -> list[str]:
        texts = list(self.test.texts)
        for seed in self.ambiguous:
            texts += self.ambiguous[seed].texts + self.balanced[seed].texts
            texts += self.pairs[seed].female + self.pairs[seed].male
        return list(dict.fromkeys(texts))      # unique, first-seen order


def build_study_data(corpora: Corpora, bcfg: BiosStudyConfig) -> StudyData:
    """The balanced test set from ``bios_test``; per probe seed, the ambiguous and balanced
    training sets from ``bios_train`` and the ambiguous set's counterfactual pairs."""
    prof = bcfg.professions
    view = hard_text_view if bcfg.drop_first_sentence else list
    bios_train, bios_test = view(corpora["bios_train"]), view(corpora["bios_test"])
    test = balanced_set(bios_test, prof, bcfg.balanced_per_group, bcfg.use_pronoun_swaps,
                        bcfg.data_seed, name="test")
    train = bios_train
    # the probe's training set: real documents only (swapped copies balance evaluation sets)
    ambiguous = {s: ambiguous_set(train, prof, bcfg.ambiguous_per_class, s) for s in bcfg.probe_seeds}
    balanced = {s: balanced_set(train, prof, bcfg.balanced_per_group, bcfg.use_pronoun_swaps, s, name="balanced_train")
                for s in bcfg.probe_seeds}
    pairs = {s: counterfactual_pairs(ambiguous[s]) for s in bcfg.probe_seeds}
    return StudyData(test, ambiguous, balanced, pairs)


class TextRows:
    """Row of each study text in the pooled arrays."""

    def __init__(self, texts: Sequence[str]):
        self.texts = list(texts)
        self._row = {t: i for i, t in enumerate(self.texts)}

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self._row[t] for t in texts], dtype=torch.long)


# ------------------------------------------------------------------ SAEs
@dataclass
class SAEView:
    """One SAE (or its slice) as the study uses it: decoder rows and every text's pooled features."""

    label: str                 # "GSAE", "SSAE", "GSAE 1/8", "SSAE 1/8" (the table's row family)
    name: str                  # unique, e.g. "SSAE seed 1 1/8"
    sae: Any                   # a SAELens SAE (sliced for compressed views; used for the audit)
    W_dec: torch.Tensor        # [d_sae, d_model]
    pooled: torch.Tensor       # [n_texts, d_sae]
    selection_seed: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def bios_finetune_config(cfg: ProfileConfig, seed: int) -> FinetuneConfig:
    """How each biographies SSAE trains: the sweep's recipe (finetune.batch_size, lr, decoder,
    train_dtype; no shuffle buffer: the selection is small) with this study's lambda, steps and decay."""
    b, s = cfg.bios, cfg.finetune
    return FinetuneConfig(l1_coefficients=(b.ssae_lambda,), steps=b.ssae_steps, batch_size=s.batch_size, lr=s.lr,
                          lr_decay_steps=b.ssae_lr_decay_steps, shuffle_buffer_batches=None, decoder=s.decoder, seed=seed,
                          compute_dtype=resolve_train_dtype(s.train_dtype, cfg.model.resolved_device))


@dataclass
class BiosTraining:
    """One biographies SSAE to train: its seed bios, their dense selection from the general
    pool, the documents it trains on and how."""

    selection_seed: int
    seeds: list[Document]
    selection: Selection
    docs: list[Document]
    fcfg: FinetuneConfig


def bios_trainings(world: World) -> list[BiosTraining]:
    """What ``bios_ssaes`` trains, one per selection seed, in its order (the torchrun worker,
    ``ssae_utils.dist.bios_worker``, shares these out, so both read them from here)."""
    cfg, bcfg = world.cfg, world.cfg.bios
    pool = world.corpora["general_pool"]
    counts = world.count_tokens(pool)
    embedder = embedder_from_config(cfg.retrieval, device=cfg.model.resolved_device)
    pool_embeddings = embed_pool(cfg.retrieval, embedder, [d.text for d in pool])   # stage 01's, cached
    index = dense_index_from_config(cfg.retrieval, pool_embeddings)
    out = []
    for seed in bcfg.ssae_selection_seeds:
        seeds = seed_bios(world.corpora["bios_train"], bcfg.ssae_seed_docs, seed)
        seed_embeddings = embed_cached(embedder, [d.text for d in seeds])
        selection = dense_selection(pool, pool_embeddings, seed_embeddings, counts, bcfg.ssae_token_budget,
                                    cfg.retrieval.dense_query, cfg.retrieval.allow_short_budget, index=index)
        docs = training_documents(selection, pool, seeds, bcfg.ssae_include_seed_docs)
        out.append(BiosTraining(seed, seeds, selection, docs, bios_finetune_config(cfg, seed)))
    return out


def bios_grid_label(selection_seed: int) -> str:
    """What the progress bars call a biographies SSAE (the ranks' too)."""
    return f"bios SSAE seed {selection_seed}"


def bios_ssaes(world: World, gsae: Any, gsae_folder: str, act_scale: float, threshold: NormThreshold | None,
               ) -> dict[int, tuple[Any, dict[str, Any]]]:
    """One biographies SSAE per selection seed (cached by training data and config)."""
    out = {}
    for job in bios_trainings(world):
        seed, seeds, selection, fcfg = job.selection_seed, job.seeds, job.selection, job.fcfg
        grid = train_grid(gsae, gsae_folder, world.store, job.docs, fcfg, act_scale, threshold,
                          world.model.hook_name, world.model.name, bios_grid_label(seed))
        info = grid.info
        out[seed] = (grid.saes[fcfg.steps][0], {
            "folder": grid.folders[fcfg.steps][0], "selection_seed": seed, "seed_doc_ids": [d.doc_id for d in seeds],
            "seed_titles": [d.meta.get("title") for d in seeds], "selection": selection.summary(),
            "selection_breakdown": selection.breakdown, "training_docs": len(job.docs),
            "train_s": info.get("train_s"), "train_tokens_unique": info.get("train_tokens_unique"),
            "finetune": fcfg.to_dict()})
    return out


def sae_views(gsae: Any, ssaes: dict[int, tuple[Any, dict[str, Any]]], tokens: DocTokens, fraction: float) -> list[SAEView]:
    """Full and compressed views of the GSAE and of every SSAE (each SAE encoded once)."""
    width = compressed_width(int(gsae.cfg.d_sae), fraction)
    named = [("GSAE", "GSAE", gsae, None)] + [("SSAE", f"SSAE seed {s}", sae, s) for s, (sae, _) in ssaes.items()]
    views = []
    for label, name, sae, seed in named:
        pooled = pooled_features(sae, tokens, desc=f"pooling {name} features")
        W_dec = sae.W_dec.detach().float()
        views.append(SAEView(label, name, sae, W_dec, pooled, seed))
        small_pooled, small_W = slice_features(pooled, W_dec, fraction)
        tag = f"1/{round(1 / fraction)}" if fraction < 1 else "full"
        views.append(SAEView(f"{label} {tag}", f"{name} {tag}", slice_sae(sae, fraction), small_W, small_pooled, seed,
                             {"d_sae": width}))
    return views


# ------------------------------------------------------------------ one probe seed
@dataclass
class Run:
    row: str                   # table row, e.g. "SSAE 1/8 SHIFT + retrain"
    probe_seed: int
    pred: np.ndarray           # test-set predictions
    sae: str | None = None     # view name
    selection_seed: int | None = None
    features: list[int] | None = None

    def record(self, test: LabelledSet) -> dict[str, Any]:
        return {"row": self.row, "sae": self.sae, "probe_seed": self.probe_seed, "selection_seed": self.selection_seed,
                "n_features": None if self.features is None else len(self.features), "features": self.features,
                **shift_metrics(self.pred, test.profession, test.gender)}


def _fit(x: torch.Tensor, y: np.ndarray, bcfg: BiosStudyConfig) -> LinearProbe:
    return fit_probe(x, torch.as_tensor(y), bcfg.probe_l2, bcfg.probe_max_iter)


class ProbeSpace:
    """What the profession probe reads: the pooled residual after block ``layer`` of every study
    text (``x``), and the same after zero-ablating SAE features at the hook (error term kept),
    propagated through the blocks in between. At ``layer == hook`` the ablation is the exact
    pooled shortcut (``shift.ablate_pooled``); results are cached per (SAE view, features, rows)."""

    def __init__(self, model: Any, ctx: HookContexts | None, layer: int, x: torch.Tensor):
        self.model, self.ctx, self.layer, self.x = model, ctx, layer, x
        self.at_hook = ctx is None or layer == model.hook_layer
        self._cache: dict[tuple, torch.Tensor] = {}
        self.passes = 0

    def ablated(self, view: SAEView, features: Sequence[int], rows: torch.Tensor) -> torch.Tensor:
        features = sorted(int(i) for i in features)
        if not features:
            return self.x[rows]
        if self.at_hook:
            return ablate_pooled(self.x[rows], view.pooled[rows], view.W_dec, features)
        key = (view.name, tuple(features), tuple(rows.tolist()))
        if key not in self._cache:
            self.passes += 1
            self._cache[key] = pooled_probe_resid(self.model, self.ctx.select_docs(rows), self.layer,
                                                  sae_ablation(view.sae, features))
        return self._cache[key]

    def scores(self, view: SAEView, rows: torch.Tensor, probe: LinearProbe, labels: np.ndarray,
               grads: torch.Tensor | None) -> torch.Tensor:
        """SHIFT attribution of each feature to the probe's label-signed logit (mean over documents)."""
        if self.at_hook:
            return shift_scores(view.pooled[rows], view.W_dec, probe, labels)
        return shift_scores_through(view.sae, self.ctx.select_docs(rows), grads)

    def gradients(self, rows: torch.Tensor, probe: LinearProbe, labels: np.ndarray) -> torch.Tensor | None:
        if self.at_hook:
            return None
        return hook_gradients(self.model, self.ctx.select_docs(rows), self.layer, probe, 2 * np.asarray(labels) - 1)


def _evaluate(space: ProbeSpace, probe: LinearProbe, view: SAEView, features: Sequence[int], r_amb: torch.Tensor,
              y_amb: np.ndarray, r_test: torch.Tensor, bcfg: BiosStudyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Test predictions of the probe on ablated activations, and of a probe refitted on the ablated
    ambiguous set ("+ retrain")."""
    test_ablated = space.ablated(view, features, r_test)
    retrained = _fit(space.ablated(view, features, r_amb), y_amb, bcfg)
    return probe.predict(test_ablated).numpy(), retrained.predict(test_ablated).numpy()


def run_probe_seed(seed: int, data: StudyData, rows: TextRows, space: ProbeSpace, x_hook: torch.Tensor,
                   views: list[SAEView], bcfg: BiosStudyConfig) -> tuple[list[Run], list[dict[str, Any]], dict[str, Any]]:
    """Every row of the table for one probe seed, the SCR records and the SHIFT selections."""
    amb, bal, pairs, test = data.ambiguous[seed], data.balanced[seed], data.pairs[seed], data.test
    r_amb, r_bal, r_test = rows.rows(amb.texts), rows.rows(bal.texts), rows.rows(test.texts)
    r_female, r_male = rows.rows(pairs.female), rows.rows(pairs.male)
    x = space.x
    probe = _fit(x[r_amb], amb.profession, bcfg)
    oracle = _fit(x[r_bal], bal.profession, bcfg)
    runs = [Run("Original", seed, probe.predict(x[r_test]).numpy()), Run("Oracle", seed, oracle.predict(x[r_test]).numpy())]
    # SCR (SAEBench) reads the SAE's own layer: its own profession, oracle and gender probes there
    if space.at_hook and space.layer == space.model.hook_layer:
        probe_h, acc_original = probe, float((runs[0].pred == test.profession).mean())
        acc_oracle = float((runs[1].pred == test.profession).mean())
    else:
        probe_h = _fit(x_hook[r_amb], amb.profession, bcfg)
        acc_original = probe_h.accuracy(x_hook[r_test], test.profession)
        acc_oracle = _fit(x_hook[r_bal], bal.profession, bcfg).accuracy(x_hook[r_test], test.profession)
    gender_probe = _fit(x_hook[r_bal], bal.gender, bcfg)
    grads = space.gradients(r_amb, probe, amb.profession)
    scr_records: list[dict[str, Any]] = []
    selections: dict[str, Any] = {}
    for view in views:
        scores = space.scores(view, r_amb, probe, amb.profession, grads)
        share = gender_share(view.pooled[r_female], view.pooled[r_male])
        chosen = select_gender_features(scores, share, bcfg.shift_candidates, bcfg.gender_share_threshold)
        selections[view.name] = {**chosen.to_dict(), "scores": {i: float(scores[i]) for i in chosen.candidates},
                                 "gender_share": {i: float(share[i]) for i in chosen.candidates}}
        pred, pred_retrained = _evaluate(space, probe, view, chosen.selected, r_amb, amb.profession, r_test, bcfg)
        common = dict(probe_seed=seed, sae=view.name, selection_seed=view.selection_seed, features=list(chosen.selected))
        runs += [Run(f"{view.label} SHIFT", pred=pred, **common),
                 Run(f"{view.label} SHIFT + retrain", pred=pred_retrained, **common)]
        if view.name == "GSAE":
            # Random baseline: as many features as GSAE SHIFT ablates, drawn from the GSAE's
            # features active on the ambiguous set.
            active = view.pooled[r_amb].sum(0) > 0
            picked = random_features(active, len(chosen.selected), bcfg.random_baseline_seed + 1000 * seed)
            pred, pred_retrained = _evaluate(space, probe, view, picked, r_amb, amb.profession, r_test, bcfg)
            common = dict(probe_seed=seed, sae=view.name, features=list(picked))
            runs += [Run("Random", pred=pred, **common), Run("Random + retrain", pred=pred_retrained, **common)]
        effects = scr_effects(view.pooled[r_bal], bal.gender, view.W_dec, gender_probe)
        for n in bcfg.scr_top_n:
            latents = top_latents(effects, n)
            out = ablate_and_evaluate(probe_h, latents, view.W_dec, x_hook[r_amb], view.pooled[r_amb], amb.profession,
                                      x_hook[r_test], view.pooled[r_test], bcfg.probe_l2, bcfg.probe_max_iter, retrain=False)
            acc = float((out.pred == test.profession).mean())
            scr_records.append({"sae": view.name, "label": view.label, "probe_seed": seed, "selection_seed": view.selection_seed,
                                "n": n, "latents": latents, "acc_ablated": acc, "acc_original": acc_original,
                                "acc_oracle": acc_oracle, "scr": scr_score(acc, acc_original, acc_oracle)})
    return runs, scr_records, selections


def choose_probe_layer(data: StudyData, rows: TextRows, pooled: dict[int, torch.Tensor], candidates: Sequence[int],
                       bcfg: BiosStudyConfig) -> dict[str, Any]:
    """The pre-declared selection (``calibration.RULE``): per candidate layer and probe seed, the
    original probe's gender accuracy on the balanced test set; SHIFT never enters."""
    test, r_test = data.test, rows.rows(data.test.texts)
    accs = []
    for layer in candidates:
        x = pooled[layer]
        per_seed = []
        for seed in bcfg.probe_seeds:
            amb = data.ambiguous[seed]
            pred = _fit(x[rows.rows(amb.texts)], amb.profession, bcfg).predict(x[r_test]).numpy()
            per_seed.append(float((pred == test.gender).mean()))
        accs.append(per_seed)
    cands = [{"professions": list(bcfg.professions), "probe_layer": int(layer)} for layer in candidates]
    return selection_record(cands, accs, bcfg.probe_seeds)


def precondition_record(runs: list[Run], summary: list[dict[str, Any]], test: LabelledSet, layer: int,
                        bcfg: BiosStudyConfig) -> dict[str, Any]:
    """The original probe's gender accuracy on the balanced test set with 95% intervals: Wilson per
    probe seed, the stratified bootstrap over test biographies for the mean (the table's CI)."""
    original = [r for r in runs if r.row == "Original"]
    n = len(test)
    per_seed = {}
    for r in original:
        k = int((r.pred == test.gender).sum())
        per_seed[str(r.probe_seed)] = {"gender_acc": k / n, "n": n, "ci": wilson_interval(k, n, bcfg.ci_level),
                                       "ci_method": f"Wilson score interval ({bcfg.ci_level:.0%}) over the {n} test biographies"}
    row = next(e for e in summary if e["row"] == "Original")
    return {"probe_layer": layer, "metric": "gender accuracy of the original (unablated) profession probe on the balanced test set",
            "per_seed": per_seed, "mean": row["gender_acc"]["mean"], "ci": row["gender_acc"]["ci"],
            "ci_method": row["gender_acc"].get("ci_method"), "reference": "~0.87 in Marks et al. (SHIFT)",
            "c9_untestable_if": "ci lower bound <= 0.6 (the scorecard reads table[row=='Original']['gender_acc']['ci'][0])"}


# ------------------------------------------------------------------ summaries
def row_order(views: list[SAEView]) -> list[str]:
    labels = list(dict.fromkeys(v.label for v in views))
    return list(BASELINE_ROWS) + [f"{label} SHIFT{suffix}" for label in labels for suffix in ("", " + retrain")]


def table(runs: list[Run], order: list[str], test: LabelledSet, bcfg: BiosStudyConfig) -> list[dict[str, Any]]:
    """One row per method: mean, seed std and bootstrap CI of each metric."""
    out = []
    ci_method = (f"percentile bootstrap ({bcfg.ci_level:.0%}, {bcfg.bootstrap_samples} resamples) of the mean over runs, "
                 "test biographies resampled within each (profession x gender) group")
    for row in order:
        mine = [r for r in runs if r.row == row]
        if not mine:
            continue
        per_run = [shift_metrics(r.pred, test.profession, test.gender) for r in mine]
        ci = bootstrap_ci([r.pred for r in mine], test.profession, test.gender, bcfg.bootstrap_samples, bcfg.ci_level,
                          seed=bcfg.data_seed)
        entry: dict[str, Any] = {"row": row, "n_runs": len(mine)}
        for m in METRICS:
            entry[m] = {**summarize([p[m] for p in per_run]), "ci": ci[m], "ci_method": ci_method}
        n_feat = [len(r.features) for r in mine if r.features is not None]
        entry["n_features"] = summarize(n_feat) if n_feat else None
        entry["paper_worst_group_acc"] = PAPER_REFERENCE["worst_group_acc"].get(row)
        out.append(entry)
    return out


def scr_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label in dict.fromkeys(r["label"] for r in records):
        for n in dict.fromkeys(r["n"] for r in records):
            mine = [r for r in records if r["label"] == label and r["n"] == n]
            out.append({"label": label, "n": n, "scr": summarize([r["scr"] for r in mine]),
                        "acc_ablated": summarize([r["acc_ablated"] for r in mine])})
    return out


def audit(views: list[SAEView], selections: dict[str, Any], sub: DocTokens, tokenizer: Any,
          k: int) -> dict[str, list[dict[str, Any]]]:
    """Every SHIFT candidate of the first probe seed, selected or not, with its top tokens on
    ``sub``, the training-side documents' tokens (never the test set)."""
    out = {}
    for view in tqdm(views, desc="auditing features", leave=False):
        chosen = selections[view.name]
        info = top_tokens(view.sae, sub, chosen["candidates"], tokenizer, k)
        out[view.name] = [{"feature": i, "rank": rank, "attribution": chosen["scores"][i],
                           "gender_share": chosen["gender_share"][i], "selected": i in chosen["selected"], **info[i]}
                          for rank, i in enumerate(chosen["candidates"])]
    return out


def _sae_stats(view: SAEView, tokens: DocTokens, test_rows: torch.Tensor) -> dict[str, Any]:
    stats = reconstruction_stats(view.sae, tokens.select_docs(test_rows).acts)
    return {"l0": stats.l0, "fvu": stats.fvu, "d_sae": int(view.W_dec.shape[0]), "tokens": stats.n_tokens}


# ------------------------------------------------------------------ the stage
def run_bias_in_bios(cfg: ProfileConfig) -> BiasInBiosResults:
    """The whole of stage 07; returns and saves its results.

    Spread over processes (``run_all.py --nproc N``, i.e. ``SSAE_NPROC``): the biographies'
    activations and the biographies SSAEs are first computed by ``python -m ssae_utils.dist
    bias_in_bios`` under torchrun, into the shared content-addressed cache; this process then
    finds them there and runs the probes, SHIFT and SCR as usual. A rank that fails fails
    the stage before anything is written."""
    from ssae_utils import dist

    dist.apply_threads()
    bcfg = cfg.bios
    timings: dict[str, float] = {}
    t = time.perf_counter()
    gsae, setup = load_saved_gsae(cfg)
    world = load_world(cfg)
    training = setup.gsae.training
    act_scale, threshold = gsae_input_space(training, cfg.gsae.outlier_norm_factor)
    data = build_study_data(world.corpora, bcfg)
    # before the first activation is cached: the ranks cache the biographies too
    dist.launch_if_requested("bias_in_bios", cfg)
    timings["load_s"] = time.perf_counter() - t

    t = time.perf_counter()
    rows = TextRows(data.all_texts())
    act_all = world.store.load(rows.texts, exclude_bos=False, desc="caching biography activations")
    keep_all = None if threshold is None else ~threshold.is_outlier(act_all.acts)
    not_bos = act_all.positions > 0
    keep = None if keep_all is None else keep_all[not_bos]
    tokens = DocTokens.from_activation_set(act_all.without_bos(), len(rows), keep)
    x_hook = pooled_residuals(tokens)
    timings["bios_activations_s"] = time.perf_counter() - t

    # the probe's layer: fixed, or picked by the pre-declared rule (calibration.py)
    t = time.perf_counter()
    model, hook = world.model, world.model.hook_layer
    candidates = list(bcfg.probe_layer_candidates) or [hook if bcfg.probe_layer is None else bcfg.probe_layer]
    for layer in candidates:
        if not hook <= layer < model.n_layers:
            raise ValueError(f"bios probe layer {layer} must lie between the SAE's hook layer {hook} and the "
                             f"last block {model.n_layers - 1} of {model.name}")
    ctx = None
    pooled = {hook: x_hook}
    if any(layer != hook for layer in candidates):
        ctx = HookContexts.from_activation_set(act_all, len(rows), keep_all)
        probe_rows = torch.unique(torch.cat([rows.rows(data.test.texts)] + [
            rows.rows(data.ambiguous[s].texts + data.balanced[s].texts) for s in bcfg.probe_seeds]))
        later = [layer for layer in candidates if layer != hook]
        sub = pooled_at_layers(model, ctx.select_docs(probe_rows), later)
        for layer in later:
            full = torch.zeros(len(rows), x_hook.shape[1])
            full[probe_rows] = sub[layer]
            pooled[layer] = full
    del act_all
    selection = choose_probe_layer(data, rows, pooled, candidates, bcfg) if len(candidates) > 1 else None
    layer = candidates[0] if selection is None else selection["picked"]["probe_layer"]
    space = ProbeSpace(model, ctx, layer, pooled[layer])
    timings["probe_layer_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ssaes = bios_ssaes(world, gsae, setup.gsae.folder, act_scale, threshold)
    timings["ssae_select_and_finetune_s"] = time.perf_counter() - t

    t = time.perf_counter()
    views = sae_views(gsae, ssaes, tokens, bcfg.compress_fraction)
    test_rows = rows.rows(data.test.texts)
    for view in views:
        view.stats.update(_sae_stats(view, tokens, test_rows))
    timings["encode_s"] = time.perf_counter() - t

    t = time.perf_counter()
    runs: list[Run] = []
    scr_records: list[dict[str, Any]] = []
    selections: dict[int, dict[str, Any]] = {}
    for seed in tqdm(bcfg.probe_seeds, desc="probe seeds"):
        seed_runs, seed_scr, selections[seed] = run_probe_seed(seed, data, rows, space, x_hook, views, bcfg)
        runs += seed_runs
        scr_records += seed_scr
    timings["shift_s"] = time.perf_counter() - t

    t = time.perf_counter()
    first = bcfg.probe_seeds[0]
    audit_texts = data.ambiguous[first].texts + data.pairs[first].female + data.pairs[first].male
    audit_tokens = tokens.select_docs(torch.unique(rows.rows(audit_texts)))   # the audit's and the dashboards'
    features = audit(views, selections[first], audit_tokens, world.model.tokenizer, bcfg.audit_top_tokens)
    summary = table(runs, row_order(views), data.test, bcfg)
    timings["summaries_s"] = time.perf_counter() - t

    # pages of the gender features (what SHIFT ablated and its strongest candidates)
    t = time.perf_counter()
    index = gender_dashboards(cfg, features, views, audit_tokens, world.model)
    log.info("gender-feature dashboards: %s (%.1f s)", index, time.perf_counter() - t)

    results = BiasInBiosResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "bios_config": bcfg.to_dict(),
        "model": {"name": world.model.name, "hook_name": world.model.hook_name, "probe_layer": layer,
                  "probe_hook_name": f"blocks.{layer}.hook_resid_post",
                  "ablation": ("at the SAE's hook, error term kept, propagated through blocks "
                               f"{hook + 1}..{layer}" if layer != hook else "at the SAE's hook (= the probe's layer)"),
                  "attribution": ("activation x gradient, gradient by autograd from the pooled probe-layer logit "
                                  "through the later blocks" if layer != hook else "activation x gradient (exact, linear)"),
                  "scr_layer": hook, "propagated_ablation_passes": space.passes},
        "data": {
            "source": cfg.data.bios_source,
            "professions": {"0 (paired with male)": bcfg.professions[0], "1 (paired with female)": bcfg.professions[1]},
            "test": data.test.card(),
            "ambiguous": {s: d.card() for s, d in data.ambiguous.items()},
            "balanced_train": {s: d.card() for s, d in data.balanced.items()},
            "counterfactual_pairs": {s: len(p.female) for s, p in data.pairs.items()},
            "notes": data.test.notes + [n for d in data.ambiguous.values() for n in d.notes],
            "tokens": int(tokens.acts.shape[0]),
            "outlier_tokens_excluded": 0 if keep is None else int((~keep).sum()),
        },
        "saes": {v.name: {"label": v.label, **v.stats, **(ssaes[v.selection_seed][1] if v.selection_seed is not None
                                                             and v.label == "SSAE" else {})} for v in views},
        "table": summary,
        "scr": {"summary": scr_summary(scr_records), "runs": scr_records},
        "runs": [r.record(data.test) for r in runs],
        "features": features,
        "paper_reference": PAPER_REFERENCE,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "probe_selection": selection if selection is not None else {
            "rule": "fixed by the config (a single candidate)", "candidates": [], "picked": {
                "professions": list(bcfg.professions), "probe_layer": layer}, "picked_index": 0},
        "precondition": precondition_record(runs, summary, data.test, layer, bcfg),
    })
    write_table1(write_results(cfg, results))
    return results


def gender_dashboards(cfg: ProfileConfig, audit: dict[str, list[dict[str, Any]]], views: list[SAEView],
                      tokens: DocTokens, model: Any) -> Path:
    """Stage 07's feature dashboards (``ssae_utils.pipeline.dashboards.stage07_dashboards``) over
    the audit's training-side biographies, in ``figures/<profile>/dashboards/bias_in_bios/``."""
    from ssae_utils.paths import figures_dir
    from ssae_utils.pipeline.dashboards import BIOS_FOLDER, stage07_dashboards

    full = {v.name: as_handle(v.sae) for v in views if v.label in ("GSAE", "SSAE")}
    title = (f"Gender-feature dashboards, Bias in Bios ({cfg.name} profile; windows from the ambiguous training "
             f"biographies and their counterfactual pairs, probe seed {cfg.bios.probe_seeds[0]})")
    return stage07_dashboards(audit, full, model, tokens.acts, tokens.token_ids, tokens.doc_index,
                              figures_dir(cfg.name) / "dashboards" / BIOS_FOLDER, title)


def write_table1(results_file: Path) -> None:
    """Table 1 as Markdown and LaTeX beside ``07_bias_in_bios.json`` (``ssae_utils.bios.table1``)."""
    from ssae_utils.bios.table1 import to_latex, to_markdown

    data = read_json(results_file)
    for file, text in ((TABLE1_MD.FILE, to_markdown(data)), (TABLE1_TEX.FILE, to_latex(data))):
        with atomic_path(Path(results_file).parent / file) as tmp:
            tmp.write_text(text)


def table_rows(results: dict[str, Any], digits: int = 3) -> list[dict[str, Any]]:
    """The notebook's table: mean [CI] of each metric per row."""
    out = []
    for row in results["table"]:
        entry: dict[str, Any] = {"row": row["row"], "runs": row["n_runs"]}
        for m in METRICS:
            v = row[m]
            ci = v["ci"]
            entry[m] = f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")
        entry["features"] = "" if row["n_features"] is None else f"{row['n_features']['mean']:.1f}"
        entry["paper worst-group"] = "" if row["paper_worst_group_acc"] is None else f"{row['paper_worst_group_acc']:.3f}"
        out.append(entry)
    return out


def sae_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The SAEs compared: size, L0 / FVU on the biographies, and what the SSAEs trained on."""
    return [{"sae": name, "d_sae": s["d_sae"], "L0": s["l0"], "FVU": s["fvu"], "training docs": s.get("training_docs"),
             "retrieved tokens": (s.get("selection") or {}).get("total_tokens")}
            for name, s in results["saes"].items()]


def scr_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """SCR per SAE and number of ablated features N: mean, SD and accuracy after ablation."""
    return [{"sae": s["label"], "N": s["n"], "SCR mean": s["scr"]["mean"], "SCR std": s["scr"]["std"],
             "accuracy after ablation": s["acc_ablated"]["mean"]} for s in results["scr"]["summary"]]


def feature_rows(results: dict[str, Any], sae: str, selected_only: bool = False) -> list[dict[str, Any]]:
    """The audit list of one SAE view: candidates with attribution, gender share and top tokens."""
    if sae not in results["features"]:
        raise KeyError(f"no audit for {sae!r}; available: {sorted(results['features'])}")
    return [{"feature": f["feature"], "selected": f["selected"], "attribution": round(f["attribution"], 4),
             "gender share": round(f["gender_share"], 3),
             "top tokens": ", ".join(repr(t["token"]) + f"×{t['count']}" for t in f["tokens"]),
             "strongest context": f["top_context"]}
            for f in results["features"][sae] if f["selected"] or not selected_only]
