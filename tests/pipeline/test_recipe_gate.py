"""The recipe gate (stage 03): the interval it judges by, its pass rule, and its choice of lr."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ssae_utils.config import load_profile
from ssae_utils.pipeline import finetune as ft
from ssae_utils.pipeline import recipe_gate as rg


def test_ratio_is_the_perplexity_ratio_and_its_interval_covers_a_noisy_equal_model():
    rng = np.random.default_rng(0)
    tokens = rng.integers(50, 150, 40)
    gsae = tokens * rng.uniform(3.0, 5.0, 40)
    # a model 1% worse in CE per token: PPL ratio exp(0.01 * mean CE)... exactly exp(sum diff / sum tokens)
    worse = gsae + 0.01 * tokens
    ratio, (lo, hi) = rg.ratio_interval(list(worse), list(gsae), list(tokens))
    assert ratio == pytest.approx(math.exp(0.01)) and lo <= ratio <= hi
    noisy = gsae + tokens * rng.normal(0, 0.05, 40)
    ratio, (lo, hi) = rg.ratio_interval(list(noisy), list(gsae), list(tokens))
    assert lo < ratio < hi and hi - lo > 0.01       # document noise widens it


def test_one_document_gives_no_interval_and_never_passes():
    ratio, interval = rg.ratio_interval([10.0], [10.0], [5])
    assert ratio == pytest.approx(1.0) and all(math.isnan(x) for x in interval)
    assert not rg.passes(interval, 0.02)
    assert rg.passes((0.9, 1.019), 0.02) and not rg.passes((0.99, 1.021), 0.02)


def test_with_lr_changes_only_the_grids_learning_rate():
    cfg = load_profile("embedded")
    gated = rg.with_lr(cfg, 3e-4)
    assert gated.finetune.lr == 3e-4 and gated.finetune.lr_for(500.0) == 3e-4
    assert cfg.finetune.lr == 1e-3          # the profile itself is untouched (lineage stamps it)
    assert rg.gate_domain(cfg) == "physics"


def _fake_stage(monkeypatch, ratios):
    """run_gate with training and evaluation replaced: candidate lr -> the SSAE's CE offset."""
    docs = [SimpleNamespace(doc_id=f"d{i}", text="x") for i in range(6)]
    tokens = [100, 80, 120, 90, 110, 100]
    base = [t * 4.0 + (i % 3) for i, t in enumerate(tokens)]
    trained = []

    def train_grid(gsae, folder, store, docs, fcfg, *args):
        trained.append(fcfg)
        return SimpleNamespace(saes={fcfg.steps: [("ssae", fcfg.lr)]}, folders={fcfg.steps: [f"saes/ssae/x/lambda_{fcfg.lr:g}"]})

    def evaluate(model, saes, data, threshold, batch, desc, doc_ce):
        (name, sae), = saes.items()
        offset = 0.0 if name == "gsae" else math.log(ratios[sae[1]])
        doc_ce[name] = [b + offset * t for b, t in zip(base, tokens)]
        return {name: {"ppl": 50.0, "l0": 100.0}}

    monkeypatch.setattr(ft, "eval_documents", lambda docs, store, n, seed: docs)
    monkeypatch.setattr(ft, "eval_set", lambda *a: SimpleNamespace())
    monkeypatch.setattr(ft, "doc_tokens", lambda data: tokens)
    monkeypatch.setattr(ft, "selection_docs", lambda *a: docs)
    monkeypatch.setattr(ft, "training_documents", lambda docs, *a: (docs, {}))
    monkeypatch.setattr(ft, "train_grid", train_grid)
    monkeypatch.setattr(ft, "evaluate", evaluate)
    cfg = load_profile("smoke")
    corpora = {"general_heldout": docs}
    gate = rg.run_gate(cfg, gsae=None, gsae_folder="g", store=None, corpora=corpora, selections={"physics": {"general": None}},
                       model=SimpleNamespace(hook_name="h", name="m"), threshold=None, act_scale=1.0, batch=4)
    return gate, trained


def test_the_gate_takes_the_largest_lr_that_passes_and_stops_there(monkeypatch):
    gate, trained = _fake_stage(monkeypatch, {1e-3: 1.10, 1e-4: 1.00})
    assert [t["lr"] for t in gate["trials"]] == [1e-3, 1e-4] and gate["lr"] == 1e-4 and gate["passed"]
    assert [t["passed"] for t in gate["trials"]] == [False, True]
    assert all(f.l1_coefficients == (1.0,) and f.checkpoint_steps == () and f.seed == 0 for f in trained)
    gate, trained = _fake_stage(monkeypatch, {1e-3: 1.0, 1e-4: 1.0})
    assert gate["lr"] == 1e-3 and len(trained) == 1                 # the first that passes ends the search


def test_a_gate_nobody_passes_is_recorded_as_failed_with_the_smallest_lr(monkeypatch):
    gate, _ = _fake_stage(monkeypatch, {1e-3: 1.2, 1e-4: 1.1})
    assert not gate["passed"] and gate["lr"] == 1e-4


def test_no_candidates_means_no_gate():
    cfg = load_profile("smoke", {"finetune.gate_lrs": []})
    assert rg.run_gate(cfg, gsae=None, gsae_folder="", store=None, corpora={}, selections={}, model=None,
                       threshold=None, act_scale=1.0, batch=1) is None
