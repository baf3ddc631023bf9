"""Stage 04: Pareto curves (patched perplexity vs L0) and their AUC, from 03_finetune.json only.

A curve is one strategy (and tilt) in one domain: one point per lambda, at the mean over
seeds of the validation L0 (x) and of the test perplexity (y: absolute, or relative to the
GSAE on the same tokens), with the seeds' standard deviations as error bars. The AUC is over
the L0 window in the sweep config, compared over the range every curve of a figure covers
(``ssae_utils.sae.pareto.compare_auc``); lower is better. A curve that misses the window gets
a warning in the results: widen the lambda grid.

Which figures a domain gets is part of its ``Domain`` (``figures``, recorded in
03_finetune.json): the presets follow the paper's numbering, fig1a / fig1b (physics,
in-distribution test, relative / absolute), fig4 (physics, out-of-distribution test), fig5a /
fig5b (toxicity test), fig6 (TERM vs ERM on Dense retrieval, physics test); a domain without
a list gets "<name>_test" (and "<name>_ood_test", "<name>_term"). Each figure's AUC is over
its domain's L0 window. Results: ``results/<profile>/04_pareto.json``.
"""

from __future__ import annotations

from typing import Any

from ssae_utils.config import ProfileConfig
from ssae_utils.domains import Domain
import numpy as np

from ssae_utils.results import FinetuneResults, FinetuneRow, ParetoResults, read_stage, write_results

from ssae_utils.sae.pareto import compare_auc, curve_auc, mean_over_seeds
from ssae_utils.sae.tilt_arms import arm_suffix, row_arm_suffix

RESULTS_FILE = ParetoResults.FILE



def figure_plan(finetune: FinetuneResults) -> dict[str, tuple[str, str, bool, str, tuple[float, float]]]:
    """figure -> (domain, split, relative?, curves: "erm" = every strategy with ERM, "term" =
    TERM vs ERM, L0 window), from the domains recorded in 03_finetune.json."""
    if not finetune.domains:
        raise ValueError(f"{finetune.FILE} records no domains (written before the domain refactor): "
                         f"{finetune.source(finetune.profile).rerun()}")
    out = {}
    for name, spec in finetune.domains.items():
        domain = Domain.from_dict(spec)
        for fig, f in domain.figure_specs().items():
            out[fig] = (name, f.split, f.relative, f.kind, domain.l0_window)
            if f.kind == "term" and finetune.sweep.get("term_arms"):
                # the arms that tilt differently get a figure of their own, so that the
                # paper's figure (and the window C7 is judged over) stays term_tilts vs ERM
                out[f"{fig}_arms"] = (name, f.split, f.relative, ARMS_KIND, domain.l0_window)
    return out


ARMS_KIND = "term_arms"   # internal figure kind: ERM and every TERM arm, term_arms included


def _in_figure(row: dict[str, Any], kind: str, term_strategy: str, paper_arms: set[str]) -> bool:
    """Whether a row's curve belongs to a figure of ``kind``: "erm" every ERM strategy;
    "term" ERM and the term_tilts arms on the TERM strategy; "term_arms" every arm there."""
    if kind == "erm":
        return row["tilt"] == 0
    if row["strategy"] != term_strategy:
        return False
    return kind == ARMS_KIND or row["tilt"] == 0 or row_curve(row) in paper_arms


def paper_arm_curves(sweep: dict[str, Any]) -> set[str]:
    """Curve names of the term_tilts arms (with the sweep's tilt_normalize / tilt_over)."""
    suffix = arm_suffix(sweep.get("tilt_normalize", "raw"), sweep.get("tilt_over", "tokens"))
    return {curve_name(sweep.get("term_strategy", "dense"), float(t), suffix) for t in sweep.get("term_tilts", ())}


def curve_name(strategy: str, tilt: float, suffix: str = "") -> str:
    """A curve's name: the strategy, or "<strategy>+TERM t=<t>" (+ ``suffix``: how the arm
    tilts when not raw over tokens, ``sae.term.arm_suffix``)."""
    return strategy if tilt == 0 else f"{strategy}+TERM t={tilt:g}{suffix}"


def row_curve(row: dict[str, Any]) -> str:
    return curve_name(row["strategy"], row["tilt"], row_arm_suffix(row))


def build_curves(rows: list[dict[str, Any]], domain: str, split: str, relative: bool, kind: str, term_strategy: str,
                 paper_arms: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    y_key = f"{split}_ppl_rel_gsae" if relative else f"{split}_ppl"
    paper_arms = paper_arms if paper_arms is not None else {row_curve(r) for r in rows if not row_arm_suffix(r)}
    chosen = [r for r in rows if r["domain"] == domain and f"{split}_ppl" in r and _in_figure(r, kind, term_strategy, paper_arms)]
    chosen = [{**r, "curve": row_curve(r)} for r in chosen]
    points = mean_over_seeds(chosen, ["curve", "lambda"], ["val_l0", y_key, f"{split}_dead_features"])
    curves: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(points, key=lambda p: p["lambda"]):
        curves.setdefault(p["curve"], []).append(
            {"lambda": p["lambda"], "l0": p["val_l0"], "l0_std": p["val_l0_std"], "y": p[y_key], "y_std": p[f"{y_key}_std"],
             "dead_features": p[f"{split}_dead_features"], "seeds": p["n"]})
    return curves


def seed_spread(rows: list[dict[str, Any]], domain: str, split: str, relative: bool, kind: str, term_strategy: str,
                common: Any, paper_arms: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """For curves trained with several seeds: each seed's own curve's mean height over the
    figure's common L0 window, their mean and standard deviation (ddof 1). This is the
    training noise a gap between two strategies has to beat."""
    if not common:
        return {}
    y_key = f"{split}_ppl_rel_gsae" if relative else f"{split}_ppl"
    paper_arms = paper_arms if paper_arms is not None else {row_curve(r) for r in rows if not row_arm_suffix(r)}
    chosen = [r for r in rows if r["domain"] == domain and y_key in r and _in_figure(r, kind, term_strategy, paper_arms)]
    by_curve: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in chosen:
        by_curve.setdefault(row_curve(r), {}).setdefault(int(r["seed"]), []).append(r)
    out = {}
    for name, seeds in by_curve.items():
        if len(seeds) < 2:
            continue
        heights = {seed: curve_auc([r["val_l0"] for r in rs], [r[y_key] for r in rs], tuple(common)).mean_y for seed, rs in sorted(seeds.items())}
        vals = np.array([v for v in heights.values() if v is not None], dtype=float)
        out[name] = {"mean_y_by_seed": {str(k): v for k, v in heights.items()}, "window": list(common),
                     "mean": float(vals.mean()) if vals.size else None,
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else None}
    return out


def flat_rows(rows: list[FinetuneRow]) -> list[dict[str, Any]]:
    """Stage 03's rows as the flat dicts the curve helpers (``sae.pareto``) average."""
    return [r.to_dict() for r in rows]


def run_pareto(cfg: ProfileConfig) -> ParetoResults:
    finetune = read_stage(cfg, FinetuneResults)
    rows, sweep = flat_rows(finetune.rows), finetune.sweep
    figures: dict[str, Any] = {}
    for fig, (domain, split, relative, kind, window) in figure_plan(finetune).items():
        if domain not in finetune.eval_splits or split not in finetune.eval_splits[domain]:
            continue
        paper_arms = paper_arm_curves(sweep)
        curves = build_curves(rows, domain, split, relative, kind, sweep["term_strategy"], paper_arms)
        if not curves:
            continue
        valid = {n: ([p["l0"] for p in pts if p["l0"] is not None and p["y"] is not None],
                     [p["y"] for p in pts if p["l0"] is not None and p["y"] is not None]) for n, pts in curves.items()}
        auc = compare_auc(valid, window)
        figures[fig] = {"domain": domain, "split": split, "relative": relative, "kind": kind, "l0_window": list(window),
                        "gsae_ppl": finetune.gsae[domain][split].gsae["ppl"],
                        "clean_ppl": finetune.gsae[domain][split].clean["ppl"],
                        "gsae_l0": finetune.gsae[domain]["val"].gsae["l0"],
                        "curves": curves, "auc": auc,
                        "seed_spread": seed_spread(rows, domain, split, relative, kind, sweep["term_strategy"], auc["common"],
                                                   paper_arms)}
    results = ParetoResults.create({
        "profile": cfg.name, "config_hash": cfg.hash(),
        "l0_windows": {name: list(d["l0_window"]) for name, d in finetune.domains.items()},
        "source": FinetuneResults.FILE, "figures": figures,
        "warnings": sorted({w for f in figures.values() for w in f["auc"]["warnings"]})})
    write_results(cfg, results)
    return results


def seed_spread_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure and curve trained with several seeds: each seed's mean height
    over the common window, their mean and SD (empty when no curve has several seeds)."""
    return [{"figure": fig, "curve": name, "window": s["window"], **{f"seed {k}": v for k, v in s["mean_y_by_seed"].items()},
             "mean": s["mean"], "std": s["std"]}
            for fig, f in results["figures"].items() for name, s in f.get("seed_spread", {}).items()]


def auc_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure and curve: AUC and mean height over the common window (lower is better)."""
    out = []
    for fig, f in results["figures"].items():
        for name, auc in f["auc"]["auc"].items():
            out.append({"figure": fig, "domain": f["domain"], "split": f["split"], "relative": f["relative"],
                        "curve": name, "auc": auc["auc"], "mean_ppl": auc["mean_y"], "l0_range": auc["covered"]})
    return out
