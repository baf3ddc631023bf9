"""The results files of the pipeline, defined once: name, the notebook that writes it, its schema.

Every stage writes ``results/<profile>/NN_<name>.json`` through its schema and every later
stage reads it back through it::

    write_results(cfg.name, FinetuneResults(...))
    stage03 = read_stage(cfg.name, FinetuneResults)      # typed: stage03.rows[0].lam

A file that does not match its schema (a key unknown to this code, one missing, an older
``schema_version``) is refused with a ``ResultsSchemaError`` (a ``ValueError``) naming the
file, the key and the command that rewrites it (``python run_all.py --profile P --only NN``).
Plain-dict readers (the plots, which take a results path) take the names from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ssae_utils.io import read_json, write_json_atomic
from ssae_utils.lineage import check_lineage, lineage_of
from ssae_utils.paths import results_dir
from ssae_utils.results.base import ABSENT, Record, ResultsSchemaError, Source, StageResults, key, optional
from ssae_utils.results.stages import (
    AutointerpResults,
    BiasInBiosResults,
    EvalDocuments,
    F1Summary,
    FinetuneResults,
    FinetuneRow,
    GsaeBlock,
    GsaeSplit,
    ParetoFigure,
    ParetoResults,
    Prefilter,
    RetrievalDomain,
    RetrievalResults,
    ScorecardClaim,
    ScorecardResults,
    SetupResults,
    ShiftRow,
    TailTokens,
    TailTokensResults,
    TracinDomain,
    TracinResults,
)

S = TypeVar("S", bound=StageResults)

STAGES: tuple[type[StageResults], ...] = (
    SetupResults, RetrievalResults, TracinResults, FinetuneResults, ParetoResults,
    TailTokensResults, AutointerpResults, BiasInBiosResults, ScorecardResults,
)
BY_FILE: dict[str, type[StageResults]] = {s.FILE: s for s in STAGES}

SETUP_FILE = SetupResults.FILE
RETRIEVAL_FILE = RetrievalResults.FILE
TRACIN_FILE = TracinResults.FILE
FINETUNE_FILE = FinetuneResults.FILE
PARETO_FILE = ParetoResults.FILE
TAIL_TOKENS_FILE = TailTokensResults.FILE
AUTOINTERP_FILE = AutointerpResults.FILE
BIAS_IN_BIOS_FILE = BiasInBiosResults.FILE
SCORECARD_FILE = ScorecardResults.FILE


@dataclass(frozen=True)
class ResultsFile:
    """A results file that has no JSON schema (the explanations table)."""

    FILE: str
    NOTEBOOK: str


EXPLANATIONS = ResultsFile("06_explanations.csv", "06")
EXPLANATIONS_FILE = EXPLANATIONS.FILE
# Table 1 (SHIFT) as Markdown and LaTeX (ssae_utils.bios.table1), beside 07_bias_in_bios.json
TABLE1_MD = ResultsFile("07_table1.md", "07")
TABLE1_TEX = ResultsFile("07_table1.tex", "07")
TABLES = (EXPLANATIONS, TABLE1_MD, TABLE1_TEX)

ALL_FILES: dict[str, str] = {**{s.FILE: s.NOTEBOOK for s in STAGES}, **{t.FILE: t.NOTEBOOK for t in TABLES}}


def notebook_of(name: str) -> str:
    """The notebook ("03") that writes results file ``name``."""
    if name not in ALL_FILES:
        raise KeyError(f"{name!r} is not a results file; known: {', '.join(ALL_FILES)}")
    return ALL_FILES[name]


def notebook_stem(name: str) -> str:
    """"03_finetune" for "03_finetune.json": the notebook's file name without .ipynb."""
    notebook_of(name)
    return Path(name).stem


def results_path(profile: str, stage: type[StageResults] | str) -> Path:
    name = stage if isinstance(stage, str) else stage.FILE
    return results_dir(profile) / name


def missing_error(profile: str, name: str) -> FileNotFoundError:
    notebook = ALL_FILES.get(name, name[:2])
    return FileNotFoundError(f"{results_dir(profile) / name} does not exist: run notebook {notebook} first "
                             f"(python run_all.py --profile {profile} --only {notebook})")


def _target(target: Any) -> tuple[str, Any]:
    """(profile name, config or None) from a profile name or a ProfileConfig."""
    if isinstance(target, str):
        return target, None
    return target.name, target


def read_stage(target: Any, stage: type[S]) -> S:
    """``results/<profile>/<stage.FILE>`` read through its schema (errors name the notebook to
    run). Given the run's config instead of a profile name (as every stage does), the file's
    lineage is checked too: made with other knobs, or from upstream results rewritten since,
    it is refused (``ssae_utils.lineage.LineageError``)."""
    profile, cfg = _target(target)
    path = results_path(profile, stage)
    if not path.exists():
        raise missing_error(profile, stage.FILE)
    record = stage.from_dict(read_json(path), source=stage.source(profile))
    if cfg is not None:
        check_lineage(stage.FILE, stage.NOTEBOOK, record.lineage or None, cfg.to_dict(), results_dir(profile), profile)
    return record


def write_results(target: Any, results: StageResults) -> Path:
    """Write ``results`` to ``results/<profile>/<its FILE>`` (atomically); returns the path.
    Given the run's config (as every stage does), the file records its lineage."""
    profile, cfg = _target(target)
    if not isinstance(results, StageResults):
        raise TypeError(f"write_results takes a stage's results record, not {type(results).__name__}")
    if results.profile != profile:
        raise ValueError(f"results of profile {results.profile!r} written under profile {profile!r}")
    if cfg is not None:
        results.lineage = lineage_of(results.NOTEBOOK, cfg.to_dict(), results_dir(profile))
    path = results_path(profile, type(results))
    write_json_atomic(path, results.to_dict())
    return path


__all__ = [
    "ABSENT", "ALL_FILES", "AUTOINTERP_FILE", "AutointerpResults", "BIAS_IN_BIOS_FILE", "BY_FILE", "BiasInBiosResults",
    "EXPLANATIONS", "EXPLANATIONS_FILE", "TABLE1_MD", "TABLE1_TEX", "TABLES", "EvalDocuments", "F1Summary", "FINETUNE_FILE", "FinetuneResults", "FinetuneRow", "GsaeBlock",
    "GsaeSplit", "PARETO_FILE", "ParetoFigure", "ParetoResults", "Prefilter", "RETRIEVAL_FILE", "Record",
    "ResultsFile", "ResultsSchemaError", "RetrievalDomain", "RetrievalResults", "SCORECARD_FILE", "SETUP_FILE",
    "STAGES", "ScorecardClaim", "ScorecardResults", "SetupResults", "ShiftRow", "Source", "StageResults", "TAIL_TOKENS_FILE",
    "TRACIN_FILE", "TailTokens", "TailTokensResults", "TracinDomain", "TracinResults", "key", "missing_error",
    "notebook_of", "notebook_stem", "optional", "read_stage", "results_path", "write_results",
]
