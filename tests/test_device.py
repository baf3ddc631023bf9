"""One device for every heavy step (ssae_utils.device): each function runs where its weights
are and takes host-side batches. Parametrised over cpu and cuda; the cuda case skips on a
machine without a GPU (bench/gpu_check.py runs the pipeline there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.device import device_of, resolve_device
from ssae_utils.model.config import ModelConfig
from ssae_utils.sae.config import GSAEConfig
from ssae_utils.sae.evaluation import reconstruction_stats, sae_splice, spliced_ce
from ssae_utils.sae.finetune import FinetuneConfig, finetune, validation_objective
from ssae_utils.sae.handle import as_handle
from ssae_utils.tracin import TracInConfig, seed_gradient, tracin_scores
from tests.sae.test_finetune import SCALE, toy_acts, toy_gsae

REPO = Path(__file__).resolve().parents[1]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


def test_auto_is_the_cpu_here_and_cuda_without_a_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and ModelConfig(device="auto").resolved_device == "cpu"
    with pytest.raises(RuntimeError, match="--set model.device=cpu"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="--set model.device=cpu"):
        ModelConfig(device="cuda").resolved_device


def test_cuda_turns_tf32_matmuls_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert resolve_device("auto") == "cuda" and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(previous)


def test_the_paper_profile_runs_on_cuda_when_present():
    from ssae_utils.config import load_profile

    assert load_profile("paper").model.device == "auto"
    assert load_profile("embedded").model.device == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_finetuning_runs_on_the_gsae_device_from_host_batches(device):
    gsae = as_handle(toy_gsae()).to(device)
    acts = toy_acts(512)                        # host memory, as the cache gives them
    cfg = FinetuneConfig(l1_coefficients=(0.5, 2.0), steps=4, batch_size=64, lr=1e-3, lr_decay_steps=2, checkpoint_steps=(2,))
    result = finetune(gsae, acts, cfg, SCALE, progress=False)
    assert {p.device.type for p in result.stack.parameters()} == {torch.device(device).type}
    saes = result.saes(step=2)
    assert device_of(saes[0]).type == torch.device(device).type
    assert validation_objective(saes[0], acts[:100], 0.5, SCALE) > 0


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_and_tracin_run_on_the_sae_device_from_host_activations(device):
    sae = as_handle(toy_gsae()).to(device)
    acts = toy_acts(300)
    stats = reconstruction_stats(sae, acts, batch_size=64)
    assert stats.n_tokens == 300 and 0 <= stats.fvu
    cfg = TracInConfig(0.5, batch_tokens=50)
    grad = seed_gradient(sae, acts[:40], cfg)
    assert all(g.device.type == torch.device(device).type for g in grad.values())
    scores = tracin_scores(sae, None, acts, torch.arange(300) // 30, 10, cfg, seed_grad=grad)
    assert scores.device.type == torch.device(device).type and torch.isfinite(scores).all()


@pytest.mark.parametrize("device", DEVICES)
def test_patched_ce_with_model_and_sae_on_one_device(device):
    from ssae_utils.model.registry import load_model

    model = load_model(ModelConfig.smoke() if device == "cpu" else ModelConfig(**{**ModelConfig.smoke().to_dict(), "device": device}))
    assert model.device.type == torch.device(device).type
    torch.manual_seed(0)
    sae = as_handle(StandardSAE(StandardSAEConfig(d_in=model.d_model, d_sae=32))).to(device)
    tokens = torch.randint(3, 100, (2, 12))
    out = spliced_ce(model, tokens, torch.tensor([12, 9]), {"sae": sae_splice(sae)}, batch_size=2)
    assert set(out) == {"clean", "sae"} and all(v == v for v in out.values())


@pytest.mark.parametrize("device", DEVICES)
def test_gsae_training_runs_on_the_requested_device(tmp_path, device):
    from ssae_utils.sae.gsae import train_gsae

    acts = toy_acts(1024) * SCALE
    cfg = GSAEConfig(d_sae=32, batch_size=128, train_tokens=512, pool_tokens=1024, lr_warm_up_steps=1)
    sae, info = train_gsae(acts, cfg, "blocks.0.hook_resid_post", tmp_path / "gsae", device=device)
    assert device_of(sae).type == torch.device(device).type and info["steps"] == 4


# Heavy modules may name "cpu" only where the data must be on the host: numpy conversion of
# cached activations, hashing a decoder's bytes, defaults of loaders whose callers pass the
# run's device. A new literal elsewhere would pin a heavy step to the CPU on a GPU box.
ALLOWED_CPU = {
    "ssae_utils/activations.py": 1,        # resid -> numpy for the on-disk cache
    "ssae_utils/analysis/logit_lens.py": 2,  # decoder bytes hashed for the cache key; final-norm scale
    "ssae_utils/model/hooked.py": 1,       # final-norm scale for the logit lens (tiny vector)
    "ssae_utils/sae/gsae.py": 4,           # defaults of train_gsae / shuffled_batches / load_sae / load_pretrained_gsae
    "ssae_utils/sae/handle.py": 1,         # default of SAEHandle.load
    "ssae_utils/sae/pretrained.py": 1,     # default of load_pretrained (stage 00 passes model.device)
    "ssae_utils/analysis/matched.py": 1,   # default of load_matched_sae (autointerp windows stay on the host)
    "ssae_utils/bios/compress.py": 1,
    "ssae_utils/model/backends/tiny_gpt2.py": 1,
    "ssae_utils/retrieval/embedders.py": 1,  # "cuda if available else cpu" when no device is given
    "ssae_utils/device.py": 2,             # resolving "auto"
    "ssae_utils/dist.py": 1,               # a gloo all-reduce takes host tensors (NCCL: cuda:LOCAL_RANK)
    "ssae_utils/model/config.py": 6,        # the knob's literal values and the CPU presets
}


def test_no_heavy_path_hard_codes_the_cpu():
    found = {}
    for path in (REPO / "ssae_utils").rglob("*.py"):
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        n = len(re.findall(r"""["']cpu["']""", code))
        if n:
            found[str(path.relative_to(REPO))] = n
    over = {p: n for p, n in found.items() if n > ALLOWED_CPU.get(p, 0)}
    assert not over, f"new hard-coded 'cpu' in {over}: take the device from model.device (ssae_utils.device)"


# --- model.dtype "auto" ----------------------------------------------------------------
def test_lm_dtype_auto_follows_native_bf16(monkeypatch):
    import ssae_utils.device as device

    assert device.resolve_lm_dtype("float32", "cpu") == "float32"
    assert device.resolve_lm_dtype("bfloat16", "cpu") == "bfloat16"
    assert device.resolve_lm_dtype("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_lm_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_lm_dtype("auto", "cpu") == "float32"
    cfg = ModelConfig(dtype="auto")
    assert cfg.dtype == "auto"   # the config keeps "auto": results read the same on any machine
    assert cfg.resolved_dtype == "float32" and cfg.torch_dtype == torch.float32


def test_auto_dtype_keys_the_activations_by_the_resolved_dtype(monkeypatch):
    import ssae_utils.device as device
    from ssae_utils.model.registry import get_backend

    cfg = ModelConfig(dtype="auto")
    backend = get_backend(cfg.name)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    as_bf16 = backend.fingerprint(cfg, "w")
    assert as_bf16 == backend.fingerprint(ModelConfig(dtype="bfloat16"), "w")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert backend.fingerprint(cfg, "w") == backend.fingerprint(ModelConfig(dtype="float32"), "w") != as_bf16


def test_cpu_bf16_flag_reads_cpuinfo(monkeypatch, tmp_path):
    import builtins

    import ssae_utils.device as device

    real_open = builtins.open
    for flags, want in (("fpu avx2 avx512f avx512_bf16", True), ("fpu avx2 fma", False), ("fpu amx_bf16 amx_tile", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor : 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda p, *a, _i=info, **k: real_open(_i if p == "/proc/cpuinfo" else p, *a, **k))
        assert device.cpu_has_native_bf16() is want


def test_train_dtype_auto_is_bf16_only_on_a_native_bf16_cpu(monkeypatch):
    import ssae_utils.device as device

    assert device.resolve_train_dtype("float32", "cpu") == "float32"
    assert device.resolve_train_dtype("bfloat16", "cuda") == "bfloat16"
    assert device.resolve_train_dtype("auto", "cuda") == "float32"     # the paper's float32 where it is cheap
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_train_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_train_dtype("auto", "cpu") == "float32"
    with pytest.raises(ValueError, match="train_dtype must be one of"):
        device.resolve_train_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="gsae.train_dtype"):
        GSAEConfig(train_dtype="half")
