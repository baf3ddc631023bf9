"""The pretrained GSAE path (gsae.source="pretrained") without the hub: a local SAELens folder
shaped like gemma-2b-res-jb (apply_b_dec_to_input=False, normalize_activations="none", a
pre-6.0 style top-level l1_coefficient) but for the smoke model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sae_lens import SAE
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.config import load_profile
from ssae_utils.paths import REPO_ROOT
from ssae_utils.retrieval import RetrievalConfig
from ssae_utils.sae.calibration import calibrate_lambda_l0, lambda_for_l0, window_lambdas
from ssae_utils.sae.config import GSAEConfig
from ssae_utils.sae.finetune import FinetuneConfig, FinetuneResult, SAEStack
from ssae_utils.sae.gsae import load_sae, save_sae
from ssae_utils.sae.handle import SAEHandle
from ssae_utils.sae.pretrained import PretrainedGSAE, check_matches_model, input_space
from ssae_utils.pipeline.tracin import tracin_settings

RELEASE_LAMBDA = 5.0


def pretrained_sae(d_in: int, d_sae: int, hook_name: str, context_size: int, normalize: str = "none",
                   seed: int = 0) -> StandardSAE:
    """A random SAE in the release's parametrisation: b_dec not subtracted from the input."""
    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False, normalize_activations=normalize)
    cfg.metadata.hook_name = hook_name
    cfg.metadata.context_size = context_size
    sae = StandardSAE(cfg)
    with torch.no_grad():
        W = torch.randn(d_in, d_sae)
        sae.W_enc.copy_(W / W.norm(dim=0, keepdim=True))
        sae.W_dec.copy_(sae.W_enc.T)
        sae.b_enc.copy_(-0.1 * torch.rand(d_sae))
        sae.b_dec.copy_(0.3 * torch.randn(d_in))
    return sae.eval()


def write_pretrained_folder(path: Path, sae: StandardSAE, l1_coefficient: float | None = RELEASE_LAMBDA) -> Path:
    """A SAELens folder (cfg.json + sae_weights.safetensors) as SAE.load_from_disk reads it,
    with the release's lambda at the top level of cfg.json as pre-6.0 releases write it."""
    sae.save_model(str(path))
    raw = json.loads((path / "cfg.json").read_text())
    if l1_coefficient is not None:
        raw["l1_coefficient"] = l1_coefficient
    (path / "cfg.json").write_text(json.dumps(raw))
    return path


def smoke_pretrained_folder(path: Path) -> Path:
    cfg = load_profile("smoke")
    return write_pretrained_folder(path, pretrained_sae(cfg.model.tiny.d_model, cfg.gsae.d_sae, cfg.model.hook_name,
                                                        cfg.model.context_length))


def inputs(d_in: int, n: int = 256, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, d_in, generator=g) + 0.5


# ------------------------------------------------------------------ config
def test_a_pretrained_gsae_is_a_path_or_a_release_never_both(tmp_path):
    GSAEConfig(source="pretrained", pretrained_path=str(tmp_path))
    GSAEConfig(source="pretrained", pretrained_release="r", pretrained_sae_id="i")
    with pytest.raises(ValueError, match="needs gsae.pretrained_release and gsae.pretrained_sae_id .* or gsae.pretrained_path"):
        GSAEConfig(source="pretrained")
    with pytest.raises(ValueError, match="not both"):
        GSAEConfig(source="pretrained", pretrained_path=str(tmp_path), pretrained_release="r", pretrained_sae_id="i")
    with pytest.raises(ValueError, match="set together"):
        GSAEConfig(source="pretrained", pretrained_release="r")
    with pytest.raises(ValueError, match="gsae.calibration_steps"):
        GSAEConfig(calibration_steps=0)
    # the knobs of one section are validated together, in either order
    for order in (("gsae.source", "gsae.pretrained_path"), ("gsae.pretrained_path", "gsae.source")):
        values = {"gsae.source": "pretrained", "gsae.pretrained_path": str(tmp_path)}
        cfg = load_profile("smoke", {k: values[k] for k in order})
        assert cfg.gsae.source == "pretrained" and cfg.gsae.pretrained_path == str(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        load_profile("paper", {"gsae.pretrained_path": str(tmp_path)})
    paper = load_profile("paper", {"gsae.pretrained_path": str(tmp_path), "gsae.pretrained_release": None,
                                   "gsae.pretrained_sae_id": None, "model.context_length": 128})
    assert paper.gsae.pretrained_path == str(tmp_path)


def test_relative_pretrained_path_is_made_absolute_for_the_kernels(tmp_path, monkeypatch):
    from ssae_utils.config import absolute_source_paths

    (tmp_path / "sae").mkdir()
    monkeypatch.chdir(tmp_path)
    fixed = absolute_source_paths({"gsae.pretrained_path": "sae"})
    assert fixed["gsae.pretrained_path"] == str((tmp_path / "sae").resolve())


def test_context_length_none_is_the_gsae_s_and_never_comes_from_the_network(tmp_path, tmp_cache):
    folder = write_pretrained_folder(tmp_path / "sae", pretrained_sae(64, 32, "blocks.2.hook_resid_post", 24))
    cfg = load_profile("smoke", {"gsae.source": "pretrained", "gsae.pretrained_path": str(folder),
                                 "model.context_length": None})
    assert cfg.model.context_length == 24
    # an explicit value is the user's and is kept
    assert load_profile("smoke", {"gsae.source": "pretrained", "gsae.pretrained_path": str(folder),
                                  "model.context_length": 16}).model.context_length == 16
    with pytest.raises(ValueError, match="set model.context_length"):
        load_profile("smoke", {"model.context_length": None})   # a trained GSAE has no context size to take
    # the paper profile: None until notebook 00 has memoised the release's cfg.json
    paper = load_profile("paper")
    assert paper.model.context_length is None
    from ssae_utils.model.registry import load_model

    with pytest.raises(ValueError, match="model.context_length is None"):
        load_model(paper.model)
    memo = tmp_cache / "cache" / "saes" / "pretrained_cfg" / "gemma-2b-res-jb__blocks.12.hook_resid_post.json"
    memo.parent.mkdir(parents=True)
    memo.write_text(json.dumps({"hook_point": "blocks.12.hook_resid_post", "d_in": 2048, "context_size": 1024}))
    assert load_profile("paper").model.context_length == 1024


# ------------------------------------------------------------------ the b_dec fold
def test_folded_handle_equals_the_release_parametrisation():
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    handle = SAEHandle.from_sae(sae)
    assert handle.b_dec_folded and not sae.cfg.apply_b_dec_to_input
    x = inputs(16)
    f = sae.encode(x)
    assert (f > 0).any(), "the test SAE must have active features"
    torch.testing.assert_close(handle.encode(x), f, atol=1e-5, rtol=0)
    torch.testing.assert_close(handle.decode(f), sae.decode(f), atol=1e-5, rtol=0)
    torch.testing.assert_close(handle(x), sae(x), atol=1e-5, rtol=0)
    x_hat, err = handle.reconstruct(x)
    torch.testing.assert_close(x_hat + err, x, atol=1e-5, rtol=0)


def test_a_compressed_release_keeps_exactly_its_first_features():
    from ssae_utils.bios.compress import slice_sae

    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    sliced = slice_sae(sae, 1 / 8)
    x = inputs(16)
    assert sliced.d_sae == 6 and sliced.b_dec_folded
    torch.testing.assert_close(sliced.encode(x), sae.encode(x)[:, :6], atol=1e-5, rtol=0)
    f = sae.encode(x)[:, :6]
    torch.testing.assert_close(sliced.decode(f), f @ sae.W_dec[:6] + sae.b_dec, atol=1e-5, rtol=0)


def test_a_zero_step_ssae_from_the_release_saves_the_same_sae(tmp_path):
    """The SSAE path (stack in the scaled space, unit-norm rows, export, save, load) keeps the
    release's function exactly when no step is taken."""
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 48)[:, None])   # rows of unequal norms: the stack rescales them
    act_scale = 0.37
    stack = SAEStack.from_sae(sae, 2, act_scale)
    result = FinetuneResult(stack, act_scale, [], FinetuneConfig(l1_coefficients=(0.5, 1.0)))
    x = inputs(16)
    for i, ssae in enumerate(result.saes(hook_name="blocks.2.hook_resid_post")):
        save_sae(ssae, tmp_path / f"ssae{i}", {"l1_coefficient": result.config.l1_coefficients[i]})
        loaded = load_sae(tmp_path / f"ssae{i}")
        assert loaded.cfg.apply_b_dec_to_input and not loaded.b_dec_folded    # saved in canonical form
        torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=1e-5)
        # features are rescaled by the decoder row norms, the active set is the same
        assert torch.equal(loaded.encode(x) > 0, sae.encode(x) > 0)


def test_the_saved_release_keeps_its_parametrisation_and_tracin_maps_gradients_back(tmp_path):
    from ssae_utils.tracin import TracInConfig, seed_gradient

    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    save_sae(sae, tmp_path / "gsae", {})
    handle = load_sae(tmp_path / "gsae")
    assert handle.b_dec_folded     # apply_b_dec_to_input=False survived the save
    x = inputs(16, n=64).double()
    tcfg = TracInConfig(0.7, "decoder_norm")
    got = seed_gradient(handle.to(dtype=torch.float64), x, tcfg)
    # autograd in the release's own parameters
    w = {n: getattr(sae, n).detach().double().clone().requires_grad_(True) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    f = torch.relu(x @ w["W_enc"] + w["b_enc"])
    r = f @ w["W_dec"] + w["b_dec"] - x
    loss = ((r * r).sum(-1) + 0.7 * f @ w["W_dec"].norm(dim=1)).mean()
    loss.backward()
    for name in w:
        torch.testing.assert_close(got[name], w[name].grad, atol=1e-6, rtol=1e-5)  # float32 weights


# ------------------------------------------------------------------ input space and lambda
@pytest.mark.parametrize("normalize", ["none", "expected_average_only_in"])
def test_input_space_units_and_the_release_lambda(normalize):
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32, normalize=normalize)
    raw = {"l1_coefficient": RELEASE_LAMBDA, "normalize_activations": normalize, "context_size": 32}
    x = 7.0 * inputs(16, n=512)
    before_state = {n: getattr(sae, n).detach().clone() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    gsae = PretrainedGSAE(sae, raw, {"path": "x"}, normalize, None, None)
    info = input_space(gsae, x, outlier_norm_factor=None)
    s = 16**0.5 / float(x.norm(dim=-1).mean())
    assert info["norm_scaling_factor"] == pytest.approx(s) and info["norm_threshold"] == math.inf
    assert sae.cfg.normalize_activations == "none"           # the handle accepts it now
    if normalize == "none":
        # raw-activation release: lambda as written is raw; scaled = raw * act_scale
        assert info["l1_coefficient_raw"] == pytest.approx(RELEASE_LAMBDA)
        assert info["l1_coefficient_scaled"] == pytest.approx(RELEASE_LAMBDA * s)
        for name, t in before_state.items():
            assert torch.equal(getattr(sae, name), t)          # nothing to fold
    else:
        # trained on x * s: its lambda is already in the sweep's units
        assert info["l1_coefficient_scaled"] == pytest.approx(RELEASE_LAMBDA)
        assert info["l1_coefficient_raw"] == pytest.approx(RELEASE_LAMBDA / s)
        # the folded SAE reads raw x as the release read x * s (it did not subtract b_dec)
        f_ref = torch.relu((x * s) @ before_state["W_enc"] + before_state["b_enc"])
        x_ref = (f_ref @ before_state["W_dec"] + before_state["b_dec"]) / s
        folded = SAEHandle.from_sae(sae)
        torch.testing.assert_close(folded.encode(x), f_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(folded(x), x_ref, atol=1e-5, rtol=1e-5)
    loss = tracin_settings(RetrievalConfig(), {"source": "pretrained", **info})
    assert loss.score.l1_coefficient == pytest.approx(info["l1_coefficient_raw"])
    assert "cfg.json" in loss.l1_coefficient_source and "raw" in loss.l1_coefficient_source


def test_without_a_release_lambda_tracin_asks_for_one_and_says_the_scale():
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    info = input_space(PretrainedGSAE(sae, {}, {}, "none", None, None), inputs(16), 3.0)
    assert info["l1_coefficient_raw"] is None and info["outliers"]["median_norm"] > 0
    with pytest.raises(ValueError, match="retrieval.tracin_l1_coefficient.*in raw units"):
        tracin_settings(RetrievalConfig(), {"source": "pretrained", **info})
    loss = tracin_settings(RetrievalConfig(tracin_l1_coefficient=2.0), {"source": "pretrained", **info})
    assert loss.score.l1_coefficient == 2.0 and loss.l1_coefficient_source == "retrieval.tracin_l1_coefficient"
    assert loss.norm_threshold == pytest.approx(info["norm_threshold"])


def test_a_pretrained_gsae_that_does_not_fit_the_model_is_refused_in_one_line():
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    gsae = PretrainedGSAE(sae, {"context_size": 32}, {}, "none", None, None)
    assert check_matches_model(gsae, "blocks.2.hook_resid_post", 16, "m", 32) == []
    assert "shorter" in check_matches_model(gsae, "blocks.2.hook_resid_post", 16, "m", 16)[0]
    for args, message in [(("blocks.3.hook_resid_post", 16, "m", 32), "reads blocks.2.hook_resid_post but the model is hooked at blocks.3"),
                          (("blocks.2.hook_resid_post", 64, "m", 32), "d_in=16 but m has d_model=64"),
                          (("blocks.2.hook_resid_post", 16, "m", 64), "model.context_length=64 is longer than the 32-token")]:
        with pytest.raises(ValueError, match=message) as err:
            check_matches_model(gsae, *args)
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------ calibration
def test_lambda_l0_calibration_is_deterministic_and_monotone():
    sae = pretrained_sae(16, 48, "blocks.2.hook_resid_post", 32)
    handle = SAEHandle.from_sae(sae)
    train, held = inputs(16, n=2048, seed=2), inputs(16, n=512, seed=3)
    s = 16**0.5 / float(held.norm(dim=-1).mean())
    kw = dict(lambdas=(0.1, 1.0, 10.0), steps=30, batch_size=256, lr=1e-2)
    cal = calibrate_lambda_l0(handle, train, held, s, **kw)
    assert cal == calibrate_lambda_l0(handle, train, held, s, **kw)
    assert cal["l0"][0] > cal["l0"][1] > cal["l0"][2], cal["l0"]        # larger lambda, sparser
    target = (cal["l0"][0] + cal["l0"][1]) / 2
    lam = lambda_for_l0(cal, target)
    assert 0.1 < lam < 1.0
    assert lambda_for_l0(cal, cal["l0"][0] + 1) is None                  # outside the calibrated range
    assert window_lambdas(cal, {"d": (cal["l0"][2], cal["l0"][0])})["d"] == pytest.approx([0.1, 10.0])


def test_lambda_for_l0_interpolates_in_log_log():
    cal = {"lambdas": [1.0, 4.0], "l0": [100.0, 25.0]}
    assert lambda_for_l0(cal, 50.0) == pytest.approx(2.0)    # L0 ~ 1/lambda: geometric midpoint
    assert lambda_for_l0({"lambdas": [1.0, 4.0], "l0": [25.0, 100.0]}, 50.0) is None   # not falling


# ------------------------------------------------------------------ the pipeline on the smoke model
@pytest.mark.slow  # ~35 s on 2 cores: builds the smoke corpora and model in a fresh cache
def test_notebook_00_library_path_on_a_pretrained_smoke_gsae(tmp_path, tmp_cache):
    from ssae_utils.pipeline.foundation import load_saved_gsae, run_foundation
    from ssae_utils.pipeline.upstream import gsae_input_space

    folder = smoke_pretrained_folder(tmp_path / "release")
    overrides = {"gsae.source": "pretrained", "gsae.pretrained_path": str(folder), "model.context_length": None,
                 "gsae.calibration_lambdas": [0.5, 2.0], "gsae.calibration_steps": 3, "gsae.calibration_batch_size": 128}
    cfg = load_profile("smoke", overrides)
    results = run_foundation(cfg)
    training, held = results.gsae.training, results.gsae.heldout
    assert training["source"] == "pretrained" and training["apply_b_dec_to_input"] is False
    assert training["context_size"] == cfg.model.context_length == 32
    assert training["l1_coefficient_raw"] == pytest.approx(RELEASE_LAMBDA)
    assert training["l1_coefficient_scaled"] == pytest.approx(RELEASE_LAMBDA * training["norm_scaling_factor"])
    assert training["norm_scaling_factor_source"].startswith("sqrt(d_in)")
    cal = training["lambda_l0_calibration"]
    assert cal["lambdas"] == [0.5, 2.0] and len(cal["l0"]) == 2 and set(cal["lambda_for_l0_window"]) == set(cfg.domains)
    # variance explained and the CE check ran on the pretrained GSAE
    assert math.isfinite(held["fvu"]) and held["l0"] > 0
    assert all(math.isfinite(held[k]) for k in ("ce_clean", "ce_sae", "ce_zero_ablation", "ce_loss_recovered"))
    # later stages read the same GSAE and input space back from disk
    gsae, setup = load_saved_gsae(load_profile("smoke", overrides))
    assert gsae.b_dec_folded
    act_scale, threshold = gsae_input_space(setup.gsae.training, cfg.gsae.outlier_norm_factor)
    assert act_scale == pytest.approx(training["norm_scaling_factor"]) and threshold is not None
    release = SAE.load_from_disk(str(folder))
    x = inputs(cfg.model.tiny.d_model)
    torch.testing.assert_close(gsae(x), release(x), atol=1e-5, rtol=0)
    # a second run reads the cache: same record
    assert run_foundation(cfg).gsae.training == training


@pytest.mark.slow
def test_run_all_stages_00_to_03_on_a_pretrained_smoke_gsae(tmp_path):
    folder = smoke_pretrained_folder(tmp_path / "release")
    env = {**os.environ, "SSAE_CACHE": str(tmp_path / "cache"), "SSAE_RESULTS": str(tmp_path / "results"),
           "SSAE_FIGURES": str(tmp_path / "figures"), "SSAE_RUNS": str(tmp_path / "runs")}
    args = ["--profile", "smoke", "--only", "00", "01", "02", "03", "--set", "gsae.source=pretrained",
            "--set", f"gsae.pretrained_path={folder}", "--set", "model.context_length=null"]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results" / "smoke"
    setup = json.loads((results / "00_setup.json").read_text())
    assert setup["gsae"]["training"]["source"] == "pretrained"
    tracin = json.loads((results / "02_tracin.json").read_text())
    assert tracin["tracin_loss"]["l1_coefficient"] == pytest.approx(RELEASE_LAMBDA)
    assert "cfg.json" in tracin["tracin_loss"]["l1_coefficient_source"]
    finetune = json.loads((results / "03_finetune.json").read_text())
    assert finetune["act_scale"] == pytest.approx(setup["gsae"]["training"]["norm_scaling_factor"])
    assert finetune["rows"] and all(r["val_l0"] > 0 for r in finetune["rows"])
