"""Stage 02's plumbing: which loss TracIn differentiates, and refusing missing or stale
stage-01 results. (The whole stage runs on the smoke profile in tests/test_run_all.py.)"""

from __future__ import annotations

import json
import math

import numpy as np

import pytest
import torch

from ssae_utils.config import load_profile
from ssae_utils.pipeline import retrieval as stage01
from ssae_utils.pipeline.tracin import _drop_outliers, load_stage01, tracin_settings
from ssae_utils.results import RetrievalResults
from ssae_utils.retrieval import RetrievalConfig
from tests.results_files import write_stage_file


def _trained(l1=1.0, scale=0.002, threshold=40_000.0):
    return {"config": {"l1_coefficient": l1}, "norm_scaling_factor": scale, "norm_threshold": threshold}


def test_lambda_is_the_training_lambda_over_the_folded_scaling_factor():
    loss = tracin_settings(RetrievalConfig(), _trained(l1=1.0, scale=0.002))
    assert loss.score.l1_coefficient == pytest.approx(500.0)
    assert "norm scaling factor" in loss.l1_coefficient_source
    assert loss.norm_threshold == 40_000.0 and loss.score.l1_weighting == "decoder_norm"
    assert loss.score.batch_tokens == RetrievalConfig().tracin_batch_tokens   # one place: retrieval.tracin_*
    assert loss.to_dict()["params"] == list(RetrievalConfig().tracin_params)
    # no scaling factor recorded (SAE trained on raw activations): lambda as trained
    info = _trained(l1=3.0, scale=None)
    assert tracin_settings(RetrievalConfig(), info).score.l1_coefficient == 3.0


def test_explicit_lambda_and_outlier_switches():
    loss = tracin_settings(RetrievalConfig(tracin_l1_coefficient=7.0, tracin_drop_outliers=False), _trained())
    assert loss.score.l1_coefficient == 7.0 and loss.norm_threshold is None
    assert tracin_settings(RetrievalConfig(), _trained(threshold=math.inf)).norm_threshold is None


def test_pretrained_gsae_without_a_known_lambda_asks_for_one():
    pretrained = {"release": "gemma-2b-res-jb", "sae_id": "blocks.12.hook_resid_post"}
    with pytest.raises(ValueError, match="retrieval.tracin_l1_coefficient"):
        tracin_settings(RetrievalConfig(), pretrained)
    assert tracin_settings(RetrievalConfig(tracin_l1_coefficient=5.0), pretrained).score.l1_coefficient == 5.0


def test_outlier_tokens_are_dropped_with_their_document_index():
    acts = torch.tensor([[1.0, 0.0], [100.0, 0.0], [0.0, 2.0]])
    kept, index, n = _drop_outliers(acts, torch.tensor([0, 0, 1]), threshold=10.0)
    assert n == 1 and index.tolist() == [0, 1] and kept.shape == (2, 2)
    assert _drop_outliers(acts, torch.tensor([0, 0, 1]), None)[2] == 0


def test_missing_or_stale_stage01_results_are_refused(tmp_cache):
    cfg = load_profile("smoke")
    with pytest.raises(FileNotFoundError, match="--only 01"):
        load_stage01(cfg)
    write_stage_file("smoke", RetrievalResults, inputs_key="something-else", domains={})
    with pytest.raises(ValueError, match="rerun notebook 01"):
        load_stage01(cfg)
    path = write_stage_file("smoke", RetrievalResults, inputs_key=stage01.inputs_key(cfg), domains={})
    assert load_stage01(cfg).domains == {}
    # a file from older code (no schema_version) is refused with the command that rewrites it
    old = json.loads(path.read_text())
    del old["schema_version"]
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"older version of notebook 01.*--profile smoke --only 01"):
        load_stage01(cfg)
    # changing a TracIn knob does not make stage 01 stale; changing a budget does
    tracin_only = load_profile("smoke", {"retrieval.tracin_l1_weighting": "none"})
    assert stage01.inputs_key(tracin_only) == stage01.inputs_key(cfg)
    budget = load_profile("smoke", {"domains.physics.token_budget": 1234})
    assert stage01.inputs_key(budget) != stage01.inputs_key(cfg)


def test_quality_rows_flatten_every_domain_and_strategy():
    from ssae_utils.pipeline.retrieval import quality_rows

    q = {"n_docs": 3, "recall": 0.5, "extra": 1}
    results = {"domains": {"physics": {"quality": {"bm25": q, "dense": q}}, "toxicity": {"quality": {"bm25": q}}}}
    rows = quality_rows(results, ["n_docs", "recall"])
    assert rows[0] == {"domain": "physics", "strategy": "bm25", "n_docs": 3, "recall": 0.5}
    assert [(r["domain"], r["strategy"]) for r in rows] == [("physics", "bm25"), ("physics", "dense"), ("toxicity", "bm25")]


def test_streamed_scoring_equals_cached_scoring(tmp_path):
    """retrieval.tracin_stream: chunk-by-chunk scores (never cached) equal the cached path's,
    outliers and unscorable documents included."""
    from ssae_utils.activations import ActivationConfig, ActivationStore
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.tracin import TracInSettings, score_candidates
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    from ssae_utils.tracin import TracInConfig, seed_gradient
    from tests.fakes import CausalToyModel

    model = CausalToyModel()
    model.context_length = 8
    store = ActivationStore(model, ActivationConfig(batch_size=3, shard_contexts=4), root=tmp_path / "acts")
    docs = [Document(f"d{i}", " ".join(f"w{(i * 5 + j) % 40}" for j in range(3 + 4 * i)), "pool") for i in range(9)]
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=model.d_model, d_sae=24))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.3)
    score = TracInConfig(0.5, "decoder_norm", batch_tokens=7)
    norms = store.load([d.text for d in docs]).acts.norm(dim=-1)
    threshold = float(norms.quantile(0.8))
    seed_grad = seed_gradient(sae, store.load([docs[0].text]).acts, score)
    cached, _ = score_candidates(sae, store, docs, seed_grad, TracInSettings(score, "test", threshold, None), "cached")
    streamed, info = score_candidates(sae, store, docs, seed_grad, TracInSettings(score, "test", threshold, None, stream=True), "streamed")
    np.testing.assert_allclose(streamed, cached, rtol=1e-6, equal_nan=True)
    assert info["streamed"] and info["outlier_tokens_dropped"] > 0


def test_candidates_mostly_without_a_tracin_score_fail_the_stage():
    from ssae_utils.pipeline.failures import StageItemsFailed
    from ssae_utils.pipeline.tracin import scorable_ids

    score_of = {"a": 1.0, "b": float("nan"), "c": 2.0, "d": float("nan")}
    assert scorable_ids("physics", "bm25", ["a", "b", "c", "d"], score_of) == ["a", "c"]      # half: kept
    score_of["c"] = float("nan")
    with pytest.raises(StageItemsFailed, match=r"3 of 4 physics bm25 TracIn candidates failed \(no scorable token.*"
                                               r"previous results were kept\. Raise gsae.outlier_norm_factor"):
        scorable_ids("physics", "bm25", ["a", "b", "c", "d"], score_of)


def test_an_outlier_threshold_below_every_token_fails_scoring_with_the_knob(tmp_path):
    """Through score_candidates (streamed: the cached path already refuses an empty token set):
    every token an outlier -> every score NaN -> the stage stops."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    from ssae_utils.activations import ActivationConfig, ActivationStore
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.failures import StageItemsFailed
    from ssae_utils.pipeline.tracin import TracInSettings, score_candidates, scorable_ids
    from ssae_utils.tracin import TracInConfig, seed_gradient
    from tests.fakes import CausalToyModel

    model = CausalToyModel()
    model.context_length = 8
    store = ActivationStore(model, ActivationConfig(batch_size=3, shard_contexts=4), root=tmp_path / "acts")
    docs = [Document(f"d{i}", " ".join(f"w{(i * 5 + j) % 40}" for j in range(3 + 2 * i)), "pool") for i in range(5)]
    sae = StandardSAE(StandardSAEConfig(d_in=model.d_model, d_sae=8))
    score = TracInConfig(0.5, "decoder_norm", batch_tokens=7)
    grad = seed_gradient(sae, store.load([docs[0].text]).acts, score)
    scores, info = score_candidates(sae, store, docs, grad, TracInSettings(score, "test", 1e-9, None, stream=True),
                                    "tiny threshold")
    assert info["unscorable_docs"] == len(docs)
    with pytest.raises(StageItemsFailed, match="5 of 5 toxicity dense TracIn candidates failed"):
        scorable_ids("toxicity", "dense", [d.doc_id for d in docs], dict(zip([d.doc_id for d in docs], scores)))
