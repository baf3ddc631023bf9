"""The one compute device of a run, and moving data onto it.

Every heavy step (the LM forward, GSAE and SSAE training, TracIn, patched CE, logit lens,
embedding, the Bias-in-Bios probes) runs on ``model.device`` resolved once per stage:
``"auto"`` is CUDA when torch sees a GPU, else the CPU. SAEs are loaded onto it
(``load_sae(path, device)``), and each heavy function moves its *batches* to the device of
the weights it uses (``device_of``), so activations cached on disk (numpy memmaps, on the
host) are copied to the GPU one batch at a time and nothing needs the whole set in GPU
memory. On CUDA, float32 matmuls use TF32 tensor cores (``enable_fast_matmul``): the SAE
steps are matmuls of 2048 x 16384 weights, where TF32 is several times faster than exact
fp32 at a relative error of ~1e-3 per product; bench/gpu_check.py measures both.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["resolve_device", "enable_fast_matmul", "device_of", "cpu_has_native_bf16", "resolve_lm_dtype", "resolve_train_dtype", "TRAIN_DTYPES"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16). Without it,
    torch emulates bf16 matmuls and they run slower than float32 (an AVX2-only machine
    measured stage 01's bf16 embedding 2.7x slower than one with native bf16)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split()))
    except OSError:
        pass
    try:  # no /proc/cpuinfo (macOS, ...): ask oneDNN (a private torch helper)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - depends on the torch build
        return False


def resolve_lm_dtype(dtype: str, device: str) -> str:
    """``model.dtype``: "auto" -> "bfloat16" on CUDA or on a CPU with native bf16 matmuls,
    else "float32"; any other value as it is."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "bfloat16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


TRAIN_DTYPES = ("float32", "bfloat16", "auto")


def resolve_train_dtype(dtype: str, device: str) -> str:
    """``gsae.train_dtype`` / ``finetune.train_dtype``, the matmul dtype of SAE training
    (bfloat16: autocast, with float32 weights, Adam state and losses): "auto" -> "bfloat16"
    on a CPU with native bf16 matmuls (an embedded lambda grid trains 4.2x faster), else
    "float32"; on CUDA "auto" stays float32 (the GPU is fast enough, and the paper trained in
    float32)."""
    if dtype not in TRAIN_DTYPES:
        raise ValueError(f"train_dtype must be one of {TRAIN_DTYPES}, not {dtype!r}")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def resolve_device(requested: str) -> str:
    """'cpu', 'cuda' or 'auto' (CUDA when available) -> the device to use; a CUDA request on a
    machine without one fails with what to do."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"  # noqa: the one place 'auto' is resolved
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"model.device={requested!r} but torch sees no CUDA device on this machine; "
                           "run on the CPU with --set model.device=cpu (or 'auto')")
    if requested.startswith("cuda"):
        enable_fast_matmul()
    return requested


def enable_fast_matmul() -> None:
    """TF32 for float32 matmuls on CUDA ("high" precision; no effect on CPU matmuls)."""
    torch.set_float32_matmul_precision("high")


_RAISE = object()


def device_of(module_or_sae: Any, default: Any = _RAISE) -> torch.device:
    """The device an SAE, SAE handle, model or tensor lives on (``default`` for an object
    that does not say, e.g. a hand-made SAE in a test; without one, a TypeError)."""
    if isinstance(module_or_sae, torch.Tensor):
        return module_or_sae.device
    dev = getattr(module_or_sae, "device", None)
    if isinstance(dev, (torch.device, str)):
        return torch.device(dev)
    for name in ("W_enc", "W_E"):
        t = getattr(module_or_sae, name, None)
        if isinstance(t, torch.Tensor):
            return t.device
    if isinstance(module_or_sae, torch.nn.Module) and next(module_or_sae.parameters(), None) is not None:
        return next(module_or_sae.parameters()).device
    if default is not _RAISE:
        return torch.device(default)
    raise TypeError(f"cannot tell which device a {type(module_or_sae).__name__} lives on")

