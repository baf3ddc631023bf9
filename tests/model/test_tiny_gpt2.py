"""The second tiny architecture, ``tiny-random-gpt2`` (GPT-2-style, built in TransformerLens).

Unit tests of the backend, then (slow) the smoke profile's notebooks 00-04 run on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformer_lens.components import LayerNorm

from ssae_utils.analysis.logit_lens import cached_top_tokens
from ssae_utils.config import load_profile
from ssae_utils.model import ModelConfig, available_models, load_model
from ssae_utils.model.backends.toy_text import toy_corpus
from ssae_utils.model.config import TinySpec
from ssae_utils.model.reference import compare_with_hf
from ssae_utils.model.storage import read_meta

NAME = "tiny-random-gpt2"
REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = TinySpec(train_steps=40)  # fewer steps than the smoke default: these tests only need a working model


@pytest.fixture(scope="module")
def gpt2_cfg() -> ModelConfig:
    return ModelConfig(name=NAME, hook_layer=1, context_length=32, tiny=SPEC)


@pytest.fixture(scope="module")
def gpt2_lm(gpt2_cfg, tiny_cache):
    with tiny_cache():
        return load_model(gpt2_cfg)


@pytest.fixture(scope="module")
def gpt2_tokens(gpt2_lm) -> torch.Tensor:
    return gpt2_lm.tokenize_contexts(toy_corpus(40, seed=123), 24)[:6]


def _weights_sha(cfg: ModelConfig, cache: Path, monkeypatch) -> str:
    from ssae_utils.model.backends.tiny_gpt2 import build_tiny_gpt2_checkpoint

    monkeypatch.setenv("SSAE_CACHE", str(cache))
    return read_meta(build_tiny_gpt2_checkpoint(cfg.tiny))["weights_sha256"]


def test_registered_with_a_gpt2_architecture(gpt2_lm, gpt2_cfg):
    assert NAME in available_models()
    cfg = gpt2_lm.tl.cfg
    assert (cfg.normalization_type, cfg.positional_embedding_type, cfg.act_fn) == ("LN", "standard", "gelu_new")
    assert not cfg.gated_mlp and cfg.n_key_value_heads is None and not cfg.use_local_attn
    assert isinstance(gpt2_lm.tl.ln_final, LayerNorm)
    assert gpt2_lm.name == NAME and gpt2_lm.hook_name == gpt2_cfg.hook_name == "blocks.1.hook_resid_post"
    assert (gpt2_lm.d_model, gpt2_lm.n_layers, gpt2_lm.vocab_size) == (SPEC.d_model, SPEC.n_layers, SPEC.vocab_size)
    assert gpt2_lm.W_U.shape == (SPEC.d_model, SPEC.vocab_size) and gpt2_lm.b_U.shape == (SPEC.vocab_size,)
    assert not any(p.requires_grad for p in gpt2_lm.tl.parameters())


def test_tokenizer_is_offline_and_contexts_start_with_bos(gpt2_lm, gpt2_tokens):
    assert gpt2_lm.bos_token_id == 2 and gpt2_lm.tokenizer("a cat").input_ids[0] == 2
    assert gpt2_tokens.shape == (6, 24) and (gpt2_tokens[:, 0] == gpt2_lm.bos_token_id).all()


def test_resid_at_hook_equals_transformer_lens_cache_at_every_layer(gpt2_lm, gpt2_tokens):
    _, cache = gpt2_lm.tl.run_with_cache(gpt2_tokens)
    for layer in range(gpt2_lm.n_layers):
        lm = gpt2_lm.with_hook_layer(layer)
        resid = lm.resid_at_hook(gpt2_tokens)
        assert resid.shape == (*gpt2_tokens.shape, gpt2_lm.d_model)
        torch.testing.assert_close(resid, cache[lm.hook_name], atol=1e-5, rtol=1e-5)


def test_run_from_hook_equals_the_full_forward(gpt2_lm, gpt2_tokens):
    with torch.no_grad():
        logits = gpt2_lm.tl(gpt2_tokens)
    for layer in range(gpt2_lm.n_layers):
        lm = gpt2_lm.with_hook_layer(layer)
        final = lm.run_from_hook(lm.resid_at_hook(gpt2_tokens))
        torch.testing.assert_close(lm.logits_from_final(final), logits.float(), atol=1e-5, rtol=1e-5)


def test_chunked_ce_is_finite_and_equals_transformer_lens_loss(gpt2_lm, gpt2_tokens):
    with torch.no_grad():
        reference = gpt2_lm.tl(gpt2_tokens, return_type="loss")
    for chunk in (1, 7, 10_000):
        lm = gpt2_lm.with_hook_layer(gpt2_lm.hook_layer)
        lm.ce_chunk_tokens = chunk
        ce = lm.ce_loss(gpt2_tokens)
        assert torch.isfinite(ce)
        torch.testing.assert_close(ce, reference, atol=1e-5, rtol=1e-5)
    assert gpt2_lm.ce_loss(gpt2_tokens) < torch.log(torch.tensor(float(SPEC.vocab_size)))  # it has learned something


def test_built_weights_are_deterministic_from_the_seed(gpt2_cfg, tmp_path, monkeypatch):
    state = torch.random.get_rng_state()
    first = _weights_sha(gpt2_cfg, tmp_path / "a", monkeypatch)
    assert torch.equal(torch.random.get_rng_state(), state)  # the build leaves the caller's RNG alone
    assert _weights_sha(gpt2_cfg, tmp_path / "b", monkeypatch) == first  # rebuilt from scratch elsewhere
    other = dataclasses.replace(gpt2_cfg, tiny=dataclasses.replace(SPEC, seed=1))
    assert _weights_sha(other, tmp_path / "c", monkeypatch) != first


def test_reload_gives_the_same_model_and_fingerprint(gpt2_cfg, gpt2_lm, gpt2_tokens, tiny_cache):
    with tiny_cache():
        again = load_model(gpt2_cfg)
        other_layer = load_model(dataclasses.replace(gpt2_cfg, hook_layer=3))
    assert again.fingerprint == gpt2_lm.fingerprint == other_layer.fingerprint
    assert torch.equal(again.resid_at_hook(gpt2_tokens), gpt2_lm.resid_at_hook(gpt2_tokens))


def test_final_norm_is_a_layernorm_and_the_logit_lens_centres(gpt2_lm, tiny_lm, tiny_cache):
    assert gpt2_lm.final_norm_centres and not tiny_lm.final_norm_centres  # LayerNorm vs Gemma's RMSNorm
    torch.testing.assert_close(gpt2_lm.final_norm_scale, gpt2_lm.tl.ln_final.w.float())
    # The lens of d must be the linear part of the LayerNorm readout: g * (d - mean(d)) @ W_U.
    W_dec = torch.randn(5, gpt2_lm.d_model, generator=torch.Generator().manual_seed(0))
    g = gpt2_lm.final_norm_scale
    expected = (((W_dec - W_dec.mean(1, keepdim=True)) * g) @ gpt2_lm.W_U.float()).topk(3, dim=1).indices
    with tiny_cache():
        tops, _ = cached_top_tokens(W_dec, gpt2_lm, 3, feature_chunk=2, vocab_chunk=100, desc="test")
        # LayerNorm removes any shift along the all-ones direction, so the lens must ignore it too
        shifted, cached = cached_top_tokens(W_dec + 3.0, gpt2_lm, 3, feature_chunk=2, vocab_chunk=100, desc="test")
    assert torch.equal(tops.indices, expected)
    assert not cached and torch.equal(shifted.indices, tops.indices)


def test_hf_reference_is_skipped_with_a_reason(gpt2_cfg, gpt2_lm):
    facts = compare_with_hf(gpt2_cfg, gpt2_lm, ["The cat sees a dog."] * 10)
    assert set(facts) == {"hf_reference_skipped"} and "no Hugging Face twin" in facts["hf_reference_skipped"]


def test_sanity_checks_report_a_working_model(gpt2_lm):
    facts = gpt2_lm.sanity_checks(toy_corpus(12, seed=9))
    assert facts["ce_identity_splice_abs_diff"] < 1e-5
    assert facts["ce_zero_splice_keep_bos"] > facts["ce_clean_nats_per_token"]


def test_contexts_longer_than_the_learned_positions_are_refused(gpt2_lm):
    tokens = torch.full((1, gpt2_lm.tl.cfg.n_ctx + 1), gpt2_lm.bos_token_id)
    with pytest.raises(ValueError, match="n_ctx"):
        gpt2_lm.resid_at_hook(tokens)


def test_hook_layer_outside_the_model_is_refused(gpt2_cfg, tiny_cache):
    with tiny_cache(), pytest.raises(ValueError, match="outside this model's layers"):
        load_model(dataclasses.replace(gpt2_cfg, hook_layer=SPEC.n_layers))


@pytest.mark.slow
def test_smoke_notebooks_00_to_04_run_on_the_gpt2_model(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}, "SSAE_CACHE": str(tmp_path / "cache"),
           "SSAE_RESULTS": str(tmp_path / "results"), "SSAE_FIGURES": str(tmp_path / "figures"), "SSAE_RUNS": str(tmp_path / "runs")}
    args = ["--profile", "smoke", "--only", "00", "01", "02", "03", "04", "--set", f"model.name={NAME}", "--set", "model.hook_layer=1"]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results" / "smoke"
    setup = json.loads((results / "00_setup.json").read_text())
    assert setup["model"]["name"] == NAME and setup["model"]["hook_name"] == "blocks.1.hook_resid_post"
    assert setup["config"]["model"]["name"] == NAME and setup["config"]["model"]["hook_layer"] == 1
    assert "no Hugging Face twin" in setup["model"]["sanity"]["hf_reference_skipped"]
    held = setup["gsae"]["heldout"]
    assert held["l0"] > 0 and 0 <= held["fvu"] < 1 and held["ce_zero_ablation"] > held["ce_clean"]
    # Later results record the hash of the whole config (model section included), not the model itself.
    expected_hash = load_profile("smoke", {"model.name": NAME, "model.hook_layer": 1}).hash()
    assert expected_hash != load_profile("smoke").hash()
    for name in ("00_setup", "01_retrieval", "02_tracin", "03_finetune", "04_pareto"):
        assert json.loads((results / f"{name}.json").read_text())["config_hash"] == expected_hash, name
    assert (tmp_path / "figures" / "smoke" / "fig1a.pdf").exists()
    rows = json.loads((results / "03_finetune.json").read_text())["rows"]
    assert rows and all(row["val_l0"] > 0 and row["test_ppl"] > 1 for row in rows)
    for row in rows:  # every SSAE is saved (SAELens format) as an SAE of this model and hook
        sae_cfg = json.loads((tmp_path / "cache" / row["ssae_folder"] / "cfg.json").read_text())
        meta = sae_cfg["metadata"]
        assert (meta["model_name"], meta["hook_name"]) == (NAME, "blocks.1.hook_resid_post")
