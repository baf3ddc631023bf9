"""One schema per results file (notebook NN writes ``NN_<name>.json``).

The keys are those the stages have always written (``tests/test_results.py`` round-trips every
committed ``results/embedded`` file). The parts a later stage, the scorecard or a plot reads
are typed; the rest stay ``dict[str, Any]`` (their keys come from other modules: the SAE
evaluation, retrieval diagnostics, configs...). Keys written only by newer or older code than
the committed embedded results are ``optional()``; each says which.
"""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from ssae_utils.results.base import Record, StageResults, key, optional
from ssae_utils.retrieval.selection import Selection


# ------------------------------------------------------------------ 00_setup.json
@dataclass(kw_only=True)
class GsaeBlock(Record):
    """The general SAE stage 00 trained (or loaded): every later stage starts from it."""

    folder: str                     # under $SSAE_CACHE (``ssae_utils.paths.cache_root``)
    training: dict[str, Any]        # training info (``sae.gsae.read_training_info``; a pretrained SAE's differs)
    heldout: dict[str, Any]         # held-out L0, FVU, CE... (``sae.evaluation.reconstruction_stats`` + CE)
    feature_density: list[float]


@dataclass(kw_only=True)
class SetupResults(StageResults):
    FILE = "00_setup.json"
    NOTEBOOK = "00"

    config: dict[str, Any]
    data_card: list[dict[str, Any]]
    pool_removals: dict[str, Any] = optional()   # since the domain refactor (not in the embedded run)
    model: dict[str, Any]
    activation_store: dict[str, Any]
    gsae: GsaeBlock
    timings: dict[str, Any]


# ------------------------------------------------------------------ 01_retrieval.json
@dataclass(kw_only=True)
class Prefilter(Record):
    """A retriever's top candidates (about ``prefilter_budget_multiple`` x the budget) for stage 02."""

    doc_ids: list[str]
    scores: list[float]
    tokens: int


@dataclass(kw_only=True)
class RetrievalDomain(Record):
    budget: int
    n_seed_docs: int
    seed_tokens: int
    n_known_positives: int
    selections: dict[str, Selection]
    quality: dict[str, dict[str, Any]]
    overlap_jaccard: dict[str, Any]
    score_histograms: dict[str, Any]
    ranking_quality: dict[str, Any]
    prefilter: dict[str, Prefilter]
    bm25_query_modes: dict[str, Any]


@dataclass(kw_only=True)
class RetrievalResults(StageResults):
    FILE = "01_retrieval.json"
    NOTEBOOK = "01"

    inputs_key: str
    retrieval_config: dict[str, Any]
    embedder: dict[str, Any]
    pool: dict[str, Any]
    domains: dict[str, RetrievalDomain]
    timings: dict[str, Any]


# ------------------------------------------------------------------ 02_tracin.json
@dataclass(kw_only=True)
class TracinDomain(Record):
    budget: int
    n_known_positives: int
    seed: dict[str, Any]
    scoring: dict[str, Any]
    selections: dict[str, Selection]
    quality: dict[str, dict[str, Any]]
    overlap_jaccard: dict[str, Any]
    candidates: dict[str, Any]
    score_histograms: dict[str, Any]
    ranking_quality: dict[str, Any]


@dataclass(kw_only=True)
class TracinResults(StageResults):
    FILE = "02_tracin.json"
    NOTEBOOK = "02"

    inputs_key: str                  # stage 01's, which these rerankings were made from
    retrieval_config: dict[str, Any]
    gsae_folder: str
    tracin_loss: dict[str, Any]
    domains: dict[str, TracinDomain]
    timings: dict[str, Any]


# ------------------------------------------------------------------ 03_finetune.json
@dataclass(kw_only=True)
class GsaeSplit(Record):
    """Stage 03's metrics of the GSAE on one evaluation split, and the clean model's CE/PPL."""

    clean: dict[str, float] = optional()   # absent only when no patched CE was computed
    gsae: dict[str, float]


@dataclass(kw_only=True)
class EvalDocuments(Record):
    """The documents of one split's patched-CE sample (stage 03), in a fixed order, with the
    valid target tokens of each and the clean model's and the GSAE's CE summed over them
    (nats). Every SSAE's ``FinetuneRow.ce_sums[split]`` is in the same order, on the same
    tokens: ``sum(sums) / sum(tokens)`` is the split's mean CE (``<split>_ce``), and any two
    models can be compared document by document (``ssae_utils.stats``)."""

    doc_ids: list[str]
    tokens: list[int]
    clean: list[float]
    gsae: list[float]


@dataclass(kw_only=True)
class FinetuneRow(Record):
    """One SSAE (domain, strategy, tilt, lambda, seed) at its picked checkpoint.

    Its evaluation columns are ``<split>_<metric>`` (``test_ppl``, ``val_l0``,
    ``ood_test_ppl_rel_gsae``...), one set per evaluation split: in ``metrics``, written back
    flat into the row."""

    EXTRA_FIELD = "metrics"
    EXTRA_PATTERN = r"[a-z][a-z0-9_]*_(ce|ppl|l0|fvu|dead_features|ppl_rel_gsae)"

    domain: str
    strategy: str
    tilt: float
    lam: float = key("lambda")
    seed: int
    ssae_folder: str
    checkpoint_step: int
    steps: int
    val_objective_by_step: dict[str, float]
    train_s: float | None
    train_tokens_unique: int | None
    metrics: dict[str, Any]
    # present when the run trained on a sample of its selection (finetune.sample_read_tokens)
    sampled_docs: int = optional()
    sampled_tokens: int = optional()
    selection_docs: int = optional()
    selection_tokens: int = optional()
    # split -> per-document CE sums on FinetuneResults.eval_documents[domain][split]
    # (since the per-document evidence; not in the committed embedded results)
    ce_sums: dict[str, list[float]] = optional()
    lr: float = optional()                    # the run's learning rate (the gate's choice; since the gate)
    # seed-only at finetune.seed_only_passes: the passes its reads make over its documents
    passes: float = optional()
    # how a TERM arm tilts, when not the paper's raw tilt over tokens (sae.term.row_arm_suffix)
    tilt_normalize: str = optional()
    tilt_over: str = optional()

    def metric(self, split: str, name: str) -> Any:
        """``metrics["<split>_<name>"]`` (None when that split had no such metric)."""
        return self.metrics.get(f"{split}_{name}")

    @property
    def val_l0(self) -> float:
        return float(self.metrics["val_l0"])


@dataclass(kw_only=True)
class FinetuneResults(StageResults):
    FILE = "03_finetune.json"
    NOTEBOOK = "03"

    sweep: dict[str, Any]                          # FinetuneSweep.to_dict()
    domains: dict[str, dict[str, Any]] = optional()  # Domain.to_dict() per trained domain (since the domain refactor)
    act_scale: float
    gsae: dict[str, dict[str, GsaeSplit]]          # domain -> split -> GSAE metrics
    eval_splits: dict[str, list[str]]
    eval_tokens: dict[str, Any]
    rows: list[FinetuneRow]
    timings: dict[str, Any]
    # domain -> split -> the patched-CE documents and the clean / GSAE per-document CE sums
    # (since the per-document evidence; not in the committed embedded results)
    eval_documents: dict[str, dict[str, EvalDocuments]] = optional()
    # the recipe gate's trials and the lr it chose (ssae_utils.pipeline.recipe_gate; since the gate)
    recipe_gate: dict[str, Any] | None = optional()

    def domain_rows(self, domain: str) -> list[FinetuneRow]:
        return [r for r in self.rows if r.domain == domain]


# ------------------------------------------------------------------ 04_pareto.json
@dataclass(kw_only=True)
class ParetoFigure(Record):
    domain: str
    split: str
    relative: bool
    kind: str                                  # "erm" or "term"
    l0_window: list[float] = optional()        # since the domain refactor (per-domain windows)
    gsae_ppl: float
    clean_ppl: float
    gsae_l0: float
    curves: dict[str, list[dict[str, Any]]]
    auc: dict[str, Any]                        # sae.pareto.compare_auc: auc, common, warnings
    seed_spread: dict[str, Any]


@dataclass(kw_only=True)
class ParetoResults(StageResults):
    FILE = "04_pareto.json"
    NOTEBOOK = "04"

    l0_window: list[float] = optional()                 # before the domain refactor (one window)
    l0_windows: dict[str, list[float]] = optional()     # since: one per domain
    source: str
    figures: dict[str, ParetoFigure]
    warnings: list[str]


# ------------------------------------------------------------------ 05_tail_tokens.json
@dataclass(kw_only=True)
class TailTokens(Record):
    baseline: str
    specialized: list[str]
    max_count: int
    n_tail_types: int
    summary: dict[str, dict[str, Any]]     # model -> only_ssae / only_baseline / both
    rows: list[dict[str, Any]]
    baseline_only_rows: list[dict[str, Any]]


@dataclass(kw_only=True)
class TailTokensResults(StageResults):
    FILE = "05_tail_tokens.json"
    NOTEBOOK = "05"

    config: dict[str, Any]
    domain: str
    target_l0: float
    models: list[dict[str, Any]]            # analysis.matched.MatchedModel.to_dict()
    baseline: str
    specialized: list[str]
    logit_lens: dict[str, Any]
    frequency: dict[str, Any]
    activation_sample: dict[str, Any]
    per_model: dict[str, dict[str, Any]]
    count_differences: dict[str, Any]
    tail_tokens: TailTokens
    timings: dict[str, Any]


# ------------------------------------------------------------------ 06_autointerp.json
@dataclass(kw_only=True)
class F1Summary(Record):
    """Mean autointerp F1 of one model's features, with its bootstrap CI."""

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    median: float | None
    level: float
    evaluated: int
    failed: int


@dataclass(kw_only=True)
class AutointerpResults(StageResults):
    FILE = "06_autointerp.json"
    NOTEBOOK = "06"

    autointerp: dict[str, Any]
    mode: str
    explainer: str
    title_label: str
    data: dict[str, Any]
    models: list[dict[str, Any]]
    summary: dict[str, F1Summary]
    table: dict[str, list[dict[str, Any]]]
    calls: dict[str, Any]
    claude_estimate: dict[str, Any]
    features: dict[str, list[dict[str, Any]]]
    timings: dict[str, Any]


# ------------------------------------------------------------------ 07_bias_in_bios.json
@dataclass(kw_only=True)
class ShiftRow(Record):
    """One row of Table 1: accuracies as mean/std/n/ci over probe (and selection) seeds."""

    row: str
    n_runs: int
    profession_acc: dict[str, Any]
    gender_acc: dict[str, Any]
    worst_group_acc: dict[str, Any]
    n_features: Any
    paper_worst_group_acc: float | None


@dataclass(kw_only=True)
class BiasInBiosResults(StageResults):
    FILE = "07_bias_in_bios.json"
    NOTEBOOK = "07"

    bios_config: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    saes: dict[str, dict[str, Any]]
    table: list[ShiftRow]
    scr: dict[str, Any]
    runs: list[dict[str, Any]]
    features: dict[str, list[dict[str, Any]]]
    paper_reference: dict[str, Any]
    timings: dict[str, Any]
    # since the late-layer probe: the pre-declared probe choice and the precondition for C9
    probe_selection: dict[str, Any] = optional()
    precondition: dict[str, Any] = optional()


# ------------------------------------------------------------------ 08_scorecard.json
@dataclass(kw_only=True)
class ScorecardClaim(Record):
    """One claim's row. ``verdict``: the four-outcome verdict of ``ssae_utils.stats``
    (reproduced / contradicted / inconclusive / untestable; its sub-tests in ``stats``) in a file
    that has ``legacy_verdict_rule``; in a file written before, the k-sigma verdict
    (reproduced / not reproduced / inconclusive), which newer files keep as ``legacy_verdict``."""

    claim: str
    text: str
    verdict: str
    legacy_verdict: str = optional()        # since the four-outcome headline
    metric: str | None
    values: list[dict[str, Any]] | None
    seeds: str | None
    evidence: list[dict[str, Any]]
    note: str | None
    stats: dict[str, Any] = optional()      # ssae_utils.stats.verdict.ClaimResult.to_dict (C1-C5 only, before the headline)
    # C7, C8: the same sub-tests for every TERM arm but the judged one, a Holm family of their
    # own beside the verdict (ClaimResult.to_dict; since the TERM bracket)
    other_arms: dict[str, Any] = optional()


@dataclass(kw_only=True)
class ScorecardResults(StageResults):
    FILE = "08_scorecard.json"
    NOTEBOOK = "08"

    sources: list[str]
    verdict_rule: str                       # the rule of ``claims[].verdict``
    legacy_verdict_rule: str = optional()   # since the four-outcome headline: the k-sigma rule of legacy_verdict
    claims: list[ScorecardClaim]
    # files between the four-outcome verdicts for C1-C5 and the headline: VERDICT_RULE, then beside verdict_rule
    stats_rule: str = optional()
