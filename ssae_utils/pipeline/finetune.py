"""Stage 03: finetune the GSAE into SSAEs on every selection, and evaluate them (paper §2.1-2.4, §3.2).

For each subdomain and each data-selection strategy (stage 01 and 02 selections), the whole
lambda grid is trained at once from the GSAE (``ssae_utils.sae.finetune``), once per seed;
Dense retrieval is also trained with TERM at the configured tilts. Every SSAE is saved in
SAELens format under the cache, keyed by everything that determines it, so an interrupted
sweep resumes where it stopped.

Model choice (paper §3.1, "the best model per L1 value on the validation split"): every
lambda keeps a few checkpoints (``finetune.checkpoint_fractions``); the one with the lowest
validation objective (its own training loss on validation tokens) is the SSAE reported.

Evaluation, per chosen SSAE and per split (validation, in-distribution test, and
out-of-distribution test where the domain has one): L0, FVU and dead features on
``finetune.stats_contexts`` contexts of the split (SAE only, cheap), and the patched
cross-entropy / perplexity on ``finetune.eval_contexts`` contexts (the residual at the hook
replaced by the SSAE's reconstruction; BOS and outlier-norm tokens pass through, as for the
GSAE; on validation only when ``finetune.val_patched_ce``, since nothing is picked by it).
The clean run up to the hook is computed once per batch and shared by the GSAE and
every SSAE of a grid; only the layers after the hook are recomputed per SAE, and padded
positions are never unembedded. The GSAE is evaluated on the same tokens, so relative
perplexity is exact. The validation L0 is the x axis of the Pareto curves.

Everything is written to ``results/<profile>/03_finetune.json`` (one row per strategy x
lambda x seed x tilt). The evidence behind each patched CE is kept too: per split, the
patched-CE documents and their token counts (``eval_documents``, with the clean model's and
the GSAE's per-document CE sums) and, per row, every SSAE's per-document CE sums on those
same documents (``ce_sums``), so comparisons can be paired document by document and their
evaluation noise estimated (``ssae_utils.stats``). The sums add up to the ``<split>_ce``
numbers (to float32 rounding), which are computed exactly as before.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ssae_utils.activations import ActivationStore
from ssae_utils.config import ProfileConfig
from ssae_utils.device import resolve_train_dtype
from ssae_utils.data.corpora import Corpora, build_corpora, find_documents
from ssae_utils.data.documents import Document
from ssae_utils.data.splitting import sample_whole_documents
from ssae_utils.domains import Domain
from ssae_utils.integrity import CorruptCacheError
from ssae_utils.io import stable_hash, write_json_atomic
from ssae_utils.model.registry import load_model
from ssae_utils.paths import cache_dir, cache_relative, cache_root, results_dir
from ssae_utils.pipeline.foundation import load_saved_gsae
from ssae_utils.pipeline.retrieval import load_stage01
from ssae_utils.pipeline import eval_cache, recipe_gate
from ssae_utils.pipeline.upstream import gsae_input_space
from ssae_utils.results import FinetuneResults, TracinResults, read_stage, write_results
from ssae_utils.retrieval.selection import Selection
from ssae_utils.sae.evaluation import reconstruction_stats, sae_splice, spliced_ce, spliced_ce_by_document
from ssae_utils.sae.finetune import FinetuneConfig, finetune, validation_objective
from ssae_utils.sae.gsae import load_sae, read_training_info, save_sae
from ssae_utils.sae.handle import as_handle
from ssae_utils.sae.outliers import NormThreshold
from ssae_utils.sae.term import TiltConfig

log = logging.getLogger(__name__)

RESULTS_FILE = FinetuneResults.FILE


def sweep_table(cfg: ProfileConfig) -> list[dict[str, Any]]:
    """One row per domain: what stage 03 trains there (the notebook's overview table)."""
    s = cfg.finetune
    return [{"domain": name, "strategies": ", ".join(d.strategies), "steps": d.steps, "checkpoints": list(s.checkpoint_steps(d)),
             "extra seeds for": ", ".join(d.extra_seed_strategies) or "-",
             "TERM": (", ".join(arm.label() for arm in s.term_runs()) + f" on {s.term_strategy}") if d.term else "-",
             "L0 window": list(d.l0_window), "SSAEs": sum(len(s.lambdas_for(t)) * len(s.seeds_for(d, st, t)) for st, t in s.runs(d))}
            for name, d in cfg.domains.items()]


# ------------------------------------------------------------------ inputs
def load_selections(cfg: ProfileConfig) -> dict[str, dict[str, Selection]]:
    """{domain: {strategy: selection}} from stages 01 and 02 (both must exist and match)."""
    first = load_stage01(cfg)
    second = read_stage(cfg, TracinResults)
    if second.inputs_key != first.inputs_key:
        raise ValueError(f"{results_dir(cfg.name) / TracinResults.FILE} was made from other stage-01 results; rerun notebook 02 (python run_all.py --profile {cfg.name} --only 02)")
    out: dict[str, dict[str, Selection]] = {}
    for domain, d in first.domains.items():
        if domain not in second.domains:
            raise ValueError(f"{TracinResults.FILE} has no {domain!r} reranking; rerun notebook 02 (python run_all.py --profile {cfg.name} --only 02)")
        out[domain] = {**d.selections, **second.domains[domain].selections}
    return out


def selection_docs(corpora: Corpora, domain: Domain, selection: Selection) -> list[Document]:
    # only the selected rows are read (the pool may be a 1M-document DocumentTable)
    by_id = find_documents([corpora["general_pool"], corpora[domain.split("seed")]], selection.doc_ids)
    missing = [i for i in selection.doc_ids if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} selected documents are not in this profile's corpora (e.g. {missing[:3]}); rerun notebooks 01 and 02")
    return [by_id[i] for i in selection.doc_ids]


def eval_documents(docs: Sequence[Document], store: ActivationStore, n_contexts: int, seed: int,
                   n_tokens: int = 0) -> list[Document]:
    """A seeded sample of whole documents holding about ``n_contexts`` contexts or, when
    ``n_tokens`` > 0, at least ``n_tokens`` predicted tokens (all of them if the split is smaller)."""
    if n_tokens > 0:
        def predictions(i: int) -> int:
            return int((store.contexts([docs[i].text])[1] - 1).clamp_min(0).sum())

        picked, _ = sample_whole_documents(docs, predictions, n_tokens, seed)
        return picked
    picked, _ = sample_whole_documents(docs, lambda i: len(store.contexts([docs[i].text])[1]), n_contexts, seed)
    return picked


# ------------------------------------------------------------------ evaluation
@dataclass
class EvalSet:
    """One evaluation split, read once and shared by the GSAE and every SSAE.

    The patched CE runs the layers after the hook and the 262k-way unembedding once per SAE,
    so it gets a small sample of contexts (``tokens``); L0, FVU, dead features and the
    validation objective need only the SAE, so they get a larger one (``acts``).
    """

    tokens: torch.Tensor        # [n_contexts, context_length] for the patched CE
    lengths: torch.Tensor       # [n_contexts]
    acts: torch.Tensor          # [n_tokens, d_in] for the SAE-only metrics; BOS and outlier-norm tokens left out
    clean_ce: float | None = None
    key: str = ""               # identity of ``acts`` (store, documents, outlier limit): what a checkpoint pick depends on
    # the document each context of ``tokens`` comes from (0 .. len(doc_ids)-1): with it the
    # patched CE is also kept per document (the evaluation noise ``ssae_utils.stats`` resamples)
    doc_index: torch.Tensor | None = None
    doc_ids: list[str] | None = None
    clean_doc_ce: list[float] | None = None   # the clean model's per-document CE sums, with clean_ce

    @property
    def ce_tokens(self) -> int:
        return int((self.lengths - 1).clamp_min(0).sum())


def eval_key(store: ActivationStore, stats_docs: Sequence[Document], threshold: NormThreshold | None) -> str:
    """``EvalSet.key`` of the set ``eval_set`` builds from ``stats_docs`` (computed without its activations)."""
    return stable_hash({"store": store.key, "docs": [d.doc_id for d in stats_docs],
                        "outlier_limit": None if threshold is None else float(threshold.limit)})


def eval_set(store: ActivationStore, ce_docs: Sequence[Document], stats_docs: Sequence[Document],
             threshold: NormThreshold | None, desc: str) -> EvalSet:
    acts = store.load([d.text for d in stats_docs], desc=desc).acts
    # one document at a time to know which contexts are whose: ``contexts`` chunks each text
    # on its own, so the concatenation is the same tensor as one call on all the texts
    pieces = [store.contexts([d.text]) for d in ce_docs]
    tokens, lengths = torch.cat([t for t, _ in pieces]), torch.cat([n for _, n in pieces])
    doc_index = torch.cat([torch.full((len(n),), i, dtype=torch.long) for i, (_, n) in enumerate(pieces)])
    key = eval_key(store, stats_docs, threshold)
    return EvalSet(tokens, lengths, acts if threshold is None else acts[~threshold.is_outlier(acts)], key=key,
                   doc_index=doc_index, doc_ids=[d.doc_id for d in ce_docs])


# Per-document CE sums are written with 9 significant digits: beyond the float32 precision of
# the per-token CE they add up, and about half the size of a full float64 repr.
DOC_CE_DIGITS = 9


def round_sig(x: float, digits: int = DOC_CE_DIGITS) -> float:
    return float(f"{float(x):.{digits}g}")


@torch.no_grad()
def evaluate(model: Any, saes: dict[str, Any], data: EvalSet, threshold: NormThreshold | None,
             batch_size: int, desc: str, patched_ce: bool = True,
             doc_ce: dict[str, list[float]] | None = None, sae_ids: dict[str, str] | None = None,
             clean: bool = True) -> dict[str, dict[str, float]]:
    """Metrics of every SAE in ``saes`` on the same tokens. The clean CE is computed on the
    first call for ``data`` and kept in it (key "clean" of the result; ``clean=False`` leaves
    it out). ``patched_ce=False`` gives the SAE-only metrics (L0, FVU, dead features) without
    "ce"/"ppl" and without running the model.

    ``doc_ce`` (a dict to fill, when ``data`` knows its documents and the patched CE is
    computed): each SAE's per-document CE sums, in the order of ``data.doc_ids``, rounded to
    ``DOC_CE_DIGITS`` significant digits; the token counts are ``doc_tokens(data)``. The
    "ce" values are the same numbers with or without it.

    ``sae_ids`` (SAE name -> ``eval_cache.sae_identity`` of its saved folder): those SAEs'
    metrics, and the clean CE, are read from the evaluation cache when there and written to
    it when computed (``ssae_utils.pipeline.eval_cache``); the numbers are the same either way."""
    want_docs = patched_ce and data.doc_index is not None and doc_ce is not None
    n_docs = len(data.doc_ids) if want_docs and data.doc_ids is not None else None
    set_id = eval_cache.set_identity(data, batch_size, patched_ce) if sae_ids else ""
    keys = {name: eval_cache.entry_key((sae_ids or {}).get(name, ""), set_id) for name in saes}
    cached = {}
    for name, key in keys.items():
        entry = eval_cache.load(key, patched_ce, n_docs)
        if entry is not None and (not want_docs or entry["doc_ce"] is not None):
            cached[name] = entry
    if patched_ce and clean and data.clean_ce is None and set_id:
        entry = eval_cache.load(eval_cache.clean_key(set_id), True, n_docs, clean=True)
        if entry is not None and (not want_docs or entry["doc_ce"] is not None):
            data.clean_ce = float(entry["metrics"]["ce"])
            data.clean_doc_ce = entry["doc_ce"] if want_docs else data.clean_doc_ce
    todo = {name: sae for name, sae in saes.items() if name not in cached}
    include_clean = patched_ce and clean and data.clean_ce is None
    ce: dict[str, float] = {}
    computed_docs: dict[str, list[float]] = {}
    if patched_ce and (todo or include_clean):
        splices = {name: sae_splice(sae, threshold) for name, sae in todo.items()}
        if want_docs:
            by_doc = spliced_ce_by_document(model, data.tokens, data.lengths, splices, data.doc_index,
                                            n_docs=len(data.doc_ids or []) or None, batch_size=batch_size, desc=desc,
                                            include_clean=include_clean)
            ce = by_doc.mean
            computed_docs = {name: [round_sig(v) for v in sums] for name, sums in by_doc.sums.items()}
        else:
            ce = spliced_ce(model, data.tokens, data.lengths, splices, batch_size=batch_size, desc=desc,
                            include_clean=include_clean)
        if include_clean:
            data.clean_ce = ce["clean"]
            if want_docs:
                data.clean_doc_ce = computed_docs["clean"]
            eval_cache.save(eval_cache.clean_key(set_id), {"ce": data.clean_ce},
                            data.clean_doc_ce if want_docs else None)
    out: dict[str, dict[str, float]] = {}
    if clean and data.clean_ce is not None:
        out["clean"] = {"ce": data.clean_ce, "ppl": math.exp(data.clean_ce)}
    for name, sae in saes.items():
        if name in cached:
            out[name] = dict(cached[name]["metrics"])
            if want_docs:
                doc_ce[name] = list(cached[name]["doc_ce"])
            continue
        stats = reconstruction_stats(sae, data.acts)
        out[name] = {**({"ce": ce[name], "ppl": math.exp(ce[name])} if patched_ce else {}), "l0": stats.l0,
                     "fvu": stats.fvu, "dead_features": stats.dead_features, "tokens": stats.n_tokens}
        if want_docs:
            doc_ce[name] = computed_docs[name]
        eval_cache.save(keys[name], out[name], computed_docs.get(name) if want_docs else None)
    return out


def evaluate_grid(model: Any, grid: "PickedGrid", fcfg: FinetuneConfig, evals: dict[str, EvalSet],
                  splits: Sequence[str], threshold: NormThreshold | None, batch_size: int, label: str,
                  val_patched_ce: bool, clean: bool = True) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """Every picked SSAE of ``grid`` on ``splits`` (through the evaluation cache): the metrics
    and the per-document CE sums per split, SAEs named ``lambda_<value>``."""
    named = {f"lambda_{lam:g}": sae for lam, sae in zip(fcfg.l1_coefficients, grid.saes)}
    ids = {f"lambda_{lam:g}": eval_cache.sae_identity(folder) for lam, folder in zip(fcfg.l1_coefficients, grid.folders)}
    sums: dict[str, dict[str, list[float]]] = {split: {} for split in splits}
    metrics = {split: evaluate(model, named, evals[split], threshold, batch_size, f"{label} {split}",
                               patched_ce=split != "val" or val_patched_ce, doc_ce=sums[split], sae_ids=ids, clean=clean)
               for split in splits}
    return metrics, sums


def doc_tokens(data: EvalSet) -> list[int]:
    """Valid target tokens per document of ``data`` (what its per-document CE sums are over)."""
    if data.doc_index is None:
        raise ValueError("this evaluation set does not know its documents")
    n = len(data.doc_ids) if data.doc_ids is not None else int(data.doc_index.max()) + 1
    per_context = (data.lengths - 1).clamp_min(0)
    return torch.zeros(n, dtype=torch.long).index_add_(0, data.doc_index, per_context).tolist()


# ------------------------------------------------------------------ training (cached)
def _run_key(gsae_folder: str, docs: Sequence[Document], fcfg: FinetuneConfig) -> str:
    return stable_hash({"gsae": gsae_folder, "docs": sorted(d.doc_id for d in docs), "finetune": fcfg.training_key()})


def _sae_folder(root: Any, lam: float, step: int, final_step: int) -> Any:
    return root / (f"lambda_{lam:g}" if step == final_step else f"lambda_{lam:g}_step{step}")


@dataclass
class TrainedGrid:
    """The SSAEs of one lambda grid at every kept step: saes[step][i] is lambda i."""

    saes: dict[int, list[Any]]
    folders: dict[int, list[str]]
    info: dict[str, Any]


def train_grid(gsae: Any, gsae_folder: str, store: ActivationStore, docs: Sequence[Document], fcfg: FinetuneConfig,
               act_scale: float, threshold: NormThreshold | None, hook_name: str, model_name: str,
               desc: str) -> TrainedGrid:
    """The SSAEs of one lambda grid, at the final step and every checkpoint (loaded from the
    cache when trained before)."""
    root = cache_dir("saes", "ssae", _run_key(gsae_folder, docs, fcfg))
    paths = {step: [_sae_folder(root, lam, step, fcfg.steps) for lam in fcfg.l1_coefficients] for step in fcfg.kept_steps}
    relative = {step: [cache_relative(p) for p in ps] for step, ps in paths.items()}
    if all((p / "cfg.json").exists() for ps in paths.values() for p in ps):
        try:
            device = str(as_handle(gsae).device)
            return TrainedGrid({step: [load_sae(p, device=device) for p in ps] for step, ps in paths.items()}, relative,
                               read_training_info(paths[fcfg.steps][0]))
        except CorruptCacheError as err:  # the cache entry is recomputable: train the grid again
            log.warning("%s: %s; training the grid again", desc, err)
    # The activations stay in the memory-mapped shards: at the paper's scale (13.9M tokens x
    # 2048) they do not fit in memory; training reads only its batches.
    on_disk = store.rows([d.text for d in docs], desc=f"caching {desc} activations")
    keep = torch.ones(len(on_disk), dtype=torch.bool) if threshold is None else on_disk.norms() <= threshold.limit
    acts = on_disk.subset(keep)
    sequence_ids = acts.doc_index
    t = time.perf_counter()
    result = finetune(gsae, acts, fcfg, act_scale, sequence_ids=sequence_ids)
    info = {"train_s": round(time.perf_counter() - t, 1), "train_tokens_unique": int(acts.shape[0]),
            "outlier_tokens_dropped": int((~keep).sum()), "samples_seen": fcfg.steps * fcfg.batch_size,
            "finetune": fcfg.to_dict(), "act_scale": act_scale, "history": result.history}
    saes = {}
    for step, ps in paths.items():
        saes[step] = result.saes(hook_name, model_name, step=step)
        for sae, path, lam in zip(saes[step], ps, fcfg.l1_coefficients):
            save_sae(sae, path, {**info, "l1_coefficient": lam, "step": step})
    return TrainedGrid(saes, relative, info)


def training_documents(docs: Sequence[Document], selection: Selection, fcfg: FinetuneConfig, sample: bool,
                       seed: int) -> tuple[list[Document], dict[str, Any]]:
    """The documents a run is trained on: the whole selection, or (``finetune.sample_read_tokens``
    and a selection larger than the steps x batch_size tokens a run reads) a seeded sample of
    whole documents holding about that many tokens. ``docs`` are the selection's, in order."""
    reads = fcfg.steps * fcfg.batch_size
    if not sample or selection.total_tokens <= reads:
        return list(docs), {}
    counts = selection.token_counts
    picked, total = sample_whole_documents(docs, lambda i: counts[i] + 1, reads, seed)   # +1: each context's BOS
    return picked, {"sampled_docs": len(picked), "sampled_tokens": int(total), "selection_docs": len(docs),
                    "selection_tokens": int(selection.total_tokens)}


def pick_checkpoints(grid: TrainedGrid, fcfg: FinetuneConfig, val: EvalSet, act_scale: float) -> list[tuple[int, dict[int, float]]]:
    """Per lambda: the kept step with the lowest validation objective, and every step's value.

    The objective is ERM's (mean reconstruction error + lambda L1) for every grid, TERM's
    too: a tilted objective near its max-loss limit would pick by the single worst
    validation token, and TERM and ERM would be chosen by different criteria."""
    picked = []
    for i, lam in enumerate(fcfg.l1_coefficients):
        scores = {step: validation_objective(grid.saes[step][i], val.acts, lam, act_scale) for step in fcfg.kept_steps}
        picked.append((min(scores, key=lambda s: (scores[s], -s)), scores))
    return picked


@dataclass
class PickedGrid:
    """Per lambda of a grid: the checkpoint validation picked, its SSAE and folder, and every
    kept step's validation objective."""

    steps: list[int]
    scores: list[dict[int, float]]
    saes: list[Any]
    folders: list[str]
    info: dict[str, Any]


def _picks_file(root: Any, val: EvalSet) -> Any:
    # "-erm": picked by the ERM objective (earlier picks of TERM grids used their tilted one)
    return root / f"picked-{val.key}-erm.json"


def _load_picks(root: Any, val: EvalSet, desc: str, device: str) -> PickedGrid | None:
    """The picks recorded for this validation set, if every picked SSAE is still there."""
    path = _picks_file(root, val)
    if not val.key or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        folders = [root / name for name in data["folders"]]
        saes = [load_sae(f, device=device) for f in folders]
        return PickedGrid([int(x) for x in data["steps"]], [{int(k): float(v) for k, v in sc.items()} for sc in data["scores"]],
                          saes, [cache_relative(f) for f in folders], read_training_info(folders[-1]))
    except (CorruptCacheError, FileNotFoundError, KeyError, TypeError, ValueError) as err:
        log.warning("%s: the recorded checkpoint picks in %s cannot be used (%s); training the grid again", desc, path, err)
        return None


def train_and_pick(gsae: Any, gsae_folder: str, store: ActivationStore, docs: Sequence[Document], fcfg: FinetuneConfig,
                   act_scale: float, threshold: NormThreshold | None, hook_name: str, model_name: str, val: EvalSet,
                   keep_unpicked: bool, desc: str) -> PickedGrid:
    """``train_grid`` + ``pick_checkpoints``; with ``keep_unpicked=False`` only the picked
    checkpoint of each lambda stays on disk, the picks recorded beside it (written before
    anything is deleted, so an interruption never loses a pick)."""
    root = cache_dir("saes", "ssae", _run_key(gsae_folder, docs, fcfg))
    if not keep_unpicked:
        cached = _load_picks(root, val, desc, str(as_handle(gsae).device))
        if cached is not None:
            return cached
    grid = train_grid(gsae, gsae_folder, store, docs, fcfg, act_scale, threshold, hook_name, model_name, desc)
    picked = pick_checkpoints(grid, fcfg, val, act_scale)
    steps = [step for step, _ in picked]
    out = PickedGrid(steps, [scores for _, scores in picked], [grid.saes[step][i] for i, step in enumerate(steps)],
                     [grid.folders[step][i] for i, step in enumerate(steps)], grid.info)
    if not keep_unpicked:
        names = [_sae_folder(root, lam, step, fcfg.steps).name for lam, step in zip(fcfg.l1_coefficients, steps)]
        write_json_atomic(_picks_file(root, val), {"steps": steps, "folders": names,
                                                    "scores": [{str(k): v for k, v in sc.items()} for sc in out.scores]})
        for i, lam in enumerate(fcfg.l1_coefficients):
            for step in fcfg.kept_steps:
                if step != steps[i]:
                    shutil.rmtree(_sae_folder(root, lam, step, fcfg.steps), ignore_errors=True)
    return out


def finetune_config(cfg: ProfileConfig, domain: Domain, seed: int, tilt: "float | TiltConfig") -> FinetuneConfig:
    s = cfg.finetune
    arm = s.arm(tilt)
    return FinetuneConfig(
        l1_coefficients=s.lambdas_for(tilt), steps=domain.steps, batch_size=s.batch_size, lr=s.lr_for(tilt),
        lr_decay_steps=s.lr_decay_steps, lr_warm_up_steps=s.lr_warm_up_steps,
        shuffle_buffer_batches=s.shuffle_buffer_batches, decoder=s.decoder,
        tilt=arm,
        seed=seed, checkpoint_steps=s.checkpoint_steps(domain),
        compute_dtype=resolve_train_dtype(s.train_dtype, cfg.model.resolved_device),
    )


@dataclass
class GridItem:
    """One unit of the sweep: the lambda grid of one (domain, strategy, tilt, seed), what it
    trains on, and its label. ``sweep_grids`` lists them in the order stage 03 runs them."""

    domain: str
    strategy: str
    tilt: float                 # the arm's t (0: ERM); how it tilts is fcfg.tilt
    seed: int
    fcfg: FinetuneConfig
    train_docs: list[Document]
    sampling: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.domain}/{self.strategy}/{self.fcfg.tilt.label()}/seed {self.seed}"

    @property
    def cost(self) -> int:
        """Relative training cost (SAE steps x lambdas trained together), for balancing ranks."""
        return self.fcfg.steps * len(self.fcfg.l1_coefficients)


def domain_grids(cfg: ProfileConfig, name: str, selections: dict[str, dict[str, Selection]], corpora: Corpora) -> list[GridItem]:
    """The grids of domain ``name``, in run order (strategy x tilt, then seed)."""
    domain = cfg.domain(name)
    out = []
    for strategy, arm in cfg.finetune.runs(domain):
        selection = selections[name][strategy]
        docs = selection_docs(corpora, domain, selection)
        for seed in cfg.finetune.seeds_for(domain, strategy, arm):
            fcfg = finetune_config(cfg, domain, seed, arm)
            train_docs, sampling = training_documents(docs, selection, fcfg, cfg.finetune.sample_read_tokens, cfg.seed)
            if strategy == "seed_only" and cfg.finetune.seed_only_passes:
                train_docs, sampling = seed_only_documents(train_docs, selection, fcfg, cfg.finetune.seed_only_passes, cfg.seed)
            out.append(GridItem(name, strategy, arm.t, seed, fcfg, train_docs, sampling))
    return out


def arm_fields(arm: TiltConfig) -> dict[str, str]:
    """The row fields that say how a TERM arm tilts, written only where it differs from the
    paper's raw tilt over tokens (``sae.term.row_arm_suffix`` reads them back)."""
    if arm.is_erm:
        return {}
    return {**({"tilt_normalize": arm.normalize} if arm.normalize != "raw" else {}),
            **({"tilt_over": arm.over} if arm.over != "tokens" else {})}


def seed_only_documents(docs: Sequence[Document], selection: Selection, fcfg: FinetuneConfig, passes: float,
                        seed: int) -> tuple[list[Document], dict[str, Any]]:
    """Seed-only at the paper's operating point (``finetune.seed_only_passes``): whole seed
    documents, in a seeded order, while they hold at most steps x batch_size / ``passes``
    tokens (at least one document), so the run passes over them at least ``passes`` times
    (the paper: 1000 x 4096 reads of a 9.2k-token seed set, ~445 passes)."""
    counts = dict(zip(selection.doc_ids, selection.token_counts))
    reads = fcfg.steps * fcfg.batch_size
    order = list(docs)
    random.Random(seed).shuffle(order)
    picked, total = [], 0
    for doc in order:
        size = counts[doc.doc_id] + 1            # + its context's BOS
        if picked and total + size > reads / float(passes):
            break
        picked.append(doc)
        total += size
    return picked, {"sampled_docs": len(picked), "sampled_tokens": int(total), "selection_docs": len(docs),
                    "selection_tokens": int(sum(counts[d.doc_id] for d in docs)), "passes": round(reads / total, 1)}


def split_eval_documents(cfg: ProfileConfig, name: str, corpora: Corpora, store: ActivationStore) -> dict[str, tuple[list[Document], list[Document]]]:
    """Per evaluation split of domain ``name``: (patched-CE documents, SAE-metric documents)."""
    domain = cfg.domain(name)
    out = {}
    for split in domain.eval_splits:
        docs = corpora[domain.split(split)]
        out[split] = (eval_documents(docs, store, cfg.finetune.eval_contexts, cfg.seed + 7, cfg.finetune.eval_tokens),
                      eval_documents(docs, store, cfg.finetune.stats_contexts, cfg.seed + 11))
    return out


def row_splits(domain: Domain, tilt: float) -> tuple[str, ...]:
    """The splits a grid is evaluated on: all of the domain's for ERM; TERM arms skip the OOD
    test (no claim or figure reads it: TERM is compared with ERM in distribution, C7/C8)."""
    return domain.eval_splits if tilt == 0 else tuple(s for s in domain.eval_splits if s != "ood_test")


def grid_key(gsae_folder: str, item: GridItem) -> str:
    """The cache entry of ``item``'s grid (items with equal keys are one grid)."""
    return _run_key(gsae_folder, item.train_docs, item.fcfg)


def grid_cached(gsae_folder: str, item: GridItem, val_key: str, keep_unpicked: bool) -> bool:
    """Whether ``train_and_pick`` would load this grid instead of training it (its recorded
    picks, or every kept checkpoint, are in the cache; their integrity is checked on loading)."""
    root = cache_root() / "saes" / "ssae" / grid_key(gsae_folder, item)
    if not keep_unpicked and val_key and (root / f"picked-{val_key}-erm.json").exists():
        return True
    return grid_trained(gsae_folder, item.train_docs, item.fcfg)


def grid_trained(gsae_folder: str, docs: Sequence[Document], fcfg: FinetuneConfig) -> bool:
    """Whether ``train_grid`` would load this grid instead of training it (every kept
    checkpoint is in the cache; their integrity is checked on loading)."""
    root = cache_root() / "saes" / "ssae" / _run_key(gsae_folder, docs, fcfg)
    return all((_sae_folder(root, lam, step, fcfg.steps) / "cfg.json").exists()
               for step in fcfg.kept_steps for lam in fcfg.l1_coefficients)


def run_finetune(cfg: ProfileConfig) -> FinetuneResults:
    """The whole of stage 03; returns and saves its results.

    Spread over processes (``run_all.py --nproc N``, i.e. ``SSAE_NPROC``): the grids are
    first trained by ``python -m ssae_utils.dist finetune`` under torchrun, into the shared
    content-addressed cache; this process then evaluates, finding every grid there. A rank
    that fails fails the stage before anything is written."""
    from ssae_utils import dist

    dist.apply_threads()
    t0 = time.perf_counter()
    selections = load_selections(cfg)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    gsae, setup = load_saved_gsae(cfg)
    training = setup.gsae.training
    act_scale, threshold = gsae_input_space(training, cfg.gsae.outlier_norm_factor)
    store = ActivationStore(model, cfg.activations)
    batch = cfg.activations.batch_size
    # The recipe gate first (one process: a few small SSAEs), then the grids with its lr; the
    # results keep the profile's own config (lineage), the gated lr is in ``recipe_gate``.
    gate, grids_cfg = recipe_gate.sweep_config(cfg, gsae=gsae, gsae_folder=setup.gsae.folder, store=store, corpora=corpora,
                                               selections=selections, model=model, threshold=threshold,
                                               act_scale=act_scale, batch=batch)
    dist.launch_if_requested("finetune", grids_cfg)
    rows: list[dict[str, Any]] = []
    gsae_metrics: dict[str, Any] = {}
    eval_tokens: dict[str, dict[str, dict[str, int]]] = {}
    eval_docs: dict[str, dict[str, dict[str, Any]]] = {}
    timings = {"load_s": round(time.perf_counter() - t0, 1)}

    for name in selections:
        domain = cfg.domain(name)
        t = time.perf_counter()
        evals = {}
        for split, (ce_docs, stats_docs) in split_eval_documents(cfg, name, corpora, store).items():
            evals[split] = eval_set(store, ce_docs, stats_docs, threshold, f"caching {name} {split} activations")
            eval_tokens.setdefault(name, {})[split] = {"ce_tokens": evals[split].ce_tokens, "stats_tokens": int(evals[split].acts.shape[0])}
        gsae_doc_ce: dict[str, dict[str, list[float]]] = {split: {} for split in evals}
        gsae_ids = {"gsae": eval_cache.sae_identity(setup.gsae.folder)}
        gsae_metrics[name] = {split: evaluate(model, {"gsae": gsae}, data, threshold, batch, f"{name} {split}: GSAE",
                                              doc_ce=gsae_doc_ce[split], sae_ids=gsae_ids)
                              for split, data in evals.items()}
        eval_docs[name] = {split: {"doc_ids": list(data.doc_ids or []), "tokens": doc_tokens(data),
                                   "clean": data.clean_doc_ce, "gsae": gsae_doc_ce[split]["gsae"]}
                           for split, data in evals.items()}
        for item in domain_grids(grids_cfg, name, selections, corpora):
            strategy, tilt, seed, fcfg, train_docs, sampling, label = \
                item.strategy, item.tilt, item.seed, item.fcfg, item.train_docs, item.sampling, item.label
            grid = train_and_pick(gsae, setup.gsae.folder, store, train_docs, fcfg, act_scale, threshold,
                                  model.hook_name, model.name, evals["val"], cfg.finetune.keep_unpicked_checkpoints, label)
            metrics, sums = evaluate_grid(model, grid, fcfg, evals, row_splits(domain, tilt), threshold, batch, label,
                                          cfg.finetune.val_patched_ce)
            splits = row_splits(domain, tilt)
            for i, lam in enumerate(fcfg.l1_coefficients):
                row = {"domain": name, "strategy": strategy, "tilt": tilt, **arm_fields(fcfg.tilt), "lambda": lam, "seed": seed, "lr": fcfg.lr,
                       "ssae_folder": grid.folders[i], "checkpoint_step": grid.steps[i], "steps": fcfg.steps,
                       "val_objective_by_step": {str(k): v for k, v in grid.scores[i].items()},
                       "train_s": grid.info.get("train_s"), "train_tokens_unique": grid.info.get("train_tokens_unique"),
                       **sampling,
                       # per-document CE sums on eval_documents[domain][split] (splits with a patched CE)
                       "ce_sums": {split: sums[split][f"lambda_{lam:g}"] for split in splits
                                   if f"lambda_{lam:g}" in sums[split]}}
                for split in splits:
                    m, g = metrics[split][f"lambda_{lam:g}"], gsae_metrics[name][split]["gsae"]
                    row.update({f"{split}_{k}": v for k, v in m.items() if k != "tokens"})
                    if "ppl" in m:
                        row[f"{split}_ppl_rel_gsae"] = m["ppl"] / g["ppl"]
                rows.append(row)
        timings[f"{name}_s"] = round(time.perf_counter() - t, 1)

    results = FinetuneResults.create({
        "profile": cfg.name,
        "config_hash": cfg.hash(),
        "sweep": cfg.finetune.to_dict(),
        "domains": {name: cfg.domains[name].to_dict() for name in selections},
        "act_scale": act_scale,
        "gsae": gsae_metrics,
        "eval_splits": {name: list(cfg.domains[name].eval_splits) for name in selections},
        "eval_tokens": eval_tokens,
        "eval_documents": eval_docs,
        "rows": rows,
        "timings": timings,
        "recipe_gate": gate,
    })
    write_results(cfg, results)
    return results
