#!/usr/bin/env python
"""GPU check: does the pipeline run on CUDA, and how fast are its heavy steps at paper scale?

    python bench/gpu_check.py --budget-s 480                 # on a GPU box (one H200: ~5 min)
    python bench/gpu_check.py --device cpu --tiny --skip smoke --out /tmp/gpu_check.json   # CPU, seconds

Four sections, each recorded as ok / partial / failed (with the error) / skipped (with why):

- ``finetune_step``: one stacked SSAE training step (``ssae_utils.sae.finetune``'s loop body,
  8 lambdas as one [8, d_in, d_sae] stack) on a random 2048 -> 16384 SAE, 4096 tokens per
  batch, in fp32, TF32 and bf16 autocast: ms/step, tokens/s, peak memory.
- ``tracin``: ``ssae_utils.tracin.tracin_scores`` (and ``seed_gradient``) on random
  activations with a random SAE of that shape: candidate tokens/s.
- ``patched_ce``: a randomly initialised TransformerLens model with Gemma-2b's shapes
  (TransformerLens' own gemma-2b config, no weights), contexts 128 and 1024, fp32 and bf16:
  the forward to blocks.12.hook_resid_post (``HookedLM.resid_at_hook``) and the CE with the
  SAE spliced in at layer 12 (``spliced_ce`` + ``sae_splice``, stage 03's code): tokens/s.
- ``smoke``: ``run_all.py --profile smoke --set model.device=<device>`` into a temporary
  folder (caches, results, figures, executed notebooks), bounded by a timeout; per-notebook
  outcome, and whether every number in the stage results is finite.

The bounded sections run first and the smoke run last, with what is left of the budget (at
most ``--smoke-timeout-s``), so a slow pipeline cannot starve the measurements. Each section
starts only if its estimated cost still fits the budget, and an alarm stops an in-process
section that overruns. The JSON (``--out``, default bench/results/gpu_check.json) is
rewritten atomically before and after every section, so a run killed part-way keeps what it
measured ("running" marks the section it was in). Exit status 1 if a section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

# Never reach for the hub (the GPU box has no network: fail fast instead of retrying), and
# keep progress bars out of the log. Both libraries read these once, at import (torch imports
# tqdm), so they are set first; only when run as a script, so importing this module (the
# test does) changes nothing. The smoke run's kernels inherit them.
QUIET_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TQDM_DISABLE")
if __name__ == "__main__":
    for _name in QUIET_OFFLINE_ENV:
        os.environ.setdefault(_name, "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the repository's ssae_utils, whatever is installed

SCHEMA = "ssae-gpu-check/1"
DEFAULT_OUT = REPO / "bench" / "results" / "gpu_check.json"
SECTIONS = ("finetune_step", "tracin", "patched_ce", "smoke")  # run order
BOS_ID = 2  # Gemma's <bos>


# --------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shapes:
    """Everything sized in the check: the paper's scale by default, ``TINY`` for the CPU test."""

    d_in: int = 2048            # Gemma-2b's d_model (the SAE reads its residual stream)
    d_sae: int = 16384          # the paper's GSAE width
    batch_tokens: int = 4096    # finetune.batch_size, also TracIn's batch_tokens
    n_lambdas: int = 8
    target_l0: int = 64         # features firing per token, set through b_enc (GSAE-like)
    tracin_docs: int = 256
    tracin_doc_len: int = 128
    tracin_seed_tokens: int = 8192
    lm_layers: int = 18
    lm_heads: int = 8
    lm_d_head: int = 256
    lm_d_mlp: int = 16384
    lm_vocab: int = 256000
    lm_n_ctx: int | None = None  # None: Gemma-2b's 8192
    hook_layer: int = 12
    contexts: tuple[int, ...] = (128, 1024)
    lm_tokens_per_call: int = 4096  # batch = this // context
    warmup: int = 3
    repeats: int = 10
    lm_warmup: int = 1
    lm_repeats: int = 3


FULL = Shapes()
# ~100x smaller everywhere; layer count and hook layer kept so stop_at_layer means the same.
TINY = Shapes(d_in=32, d_sae=256, batch_tokens=64, target_l0=8, tracin_docs=16, tracin_doc_len=16,
              tracin_seed_tokens=128, lm_heads=2, lm_d_head=16, lm_d_mlp=128, lm_vocab=2560, lm_n_ctx=64,
              contexts=(16, 32), lm_tokens_per_call=64, warmup=1, repeats=2, lm_warmup=1, lm_repeats=1)

# Estimated seconds a section needs at full scale on one H200 (model build included): it
# starts only if this much budget is left. With --tiny everything takes seconds.
NEEDS_S = {"finetune_step": 45.0, "tracin": 25.0, "patched_ce": 120.0, "smoke": 60.0}
TINY_NEEDS_S = {"finetune_step": 3.0, "tracin": 2.0, "patched_ce": 5.0, "smoke": 30.0}


def needs_s(section: str, shapes: Shapes) -> float:
    return (NEEDS_S if shapes == FULL else TINY_NEEDS_S)[section]


# --------------------------------------------------------------------------- results
@dataclass
class SectionResult:
    name: str
    status: str = "pending"     # pending | running | ok | partial | failed | skipped
    seconds: float | None = None
    error: str | None = None    # failed: "Type: message"
    reason: str | None = None   # skipped (or partial): why
    numbers: dict[str, float | None] = field(default_factory=dict)  # flat "variant.metric" -> value
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    started: str
    budget_s: float
    device: str
    tiny: bool
    argv: list[str]
    machine: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, SectionResult] = field(default_factory=dict)
    schema: str = SCHEMA
    elapsed_s: float = 0.0
    finished: str | None = None  # set when every section is done

    def write(self, path: Path) -> None:
        """Atomically: tmp file + os.replace, so a killed run never leaves half a JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(_json_safe(asdict(self)), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _json_safe(obj: Any) -> Any:
    """Standard JSON: a non-finite float becomes the string "nan"/"inf" (visible, and no
    reader chokes on NaN); unknown objects become their str()."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.total = seconds
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.total - self.elapsed()


class BudgetExceeded(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise BudgetExceeded in this (main) thread after ``seconds``: stops a section that
    overruns its share (at the next Python bytecode, i.e. once a running kernel returns)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def ring(signum, frame):
        raise BudgetExceeded(f"stopped after {seconds:.0f} s: the run's time budget ran out")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- device helpers
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    """Peak allocated since reset_peak (CUDA caching allocator); None on the CPU, which has
    no per-variant counter."""
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def timed(fn: Callable[[], Any], device: str, warmup: int, repeats: int) -> float:
    """Median seconds per call after ``warmup`` calls, each call synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "git_commit": _git_commit(),
    }
    for package in ("transformer-lens", "sae-lens", "transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[package.replace("-", "_")] = metadata.version(package)
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 2),
                    cuda_capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                    gpu_count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------- a random SAE
def random_sae(shapes: Shapes, device: str, seed: int = 0):
    """A SAELens StandardSAE of the GSAE's shape, as an ``SAEHandle`` (what stages pass
    around): random directions, unit-norm decoder rows, and b_enc set per feature so that
    about ``target_l0`` features fire per token on standard-normal inputs. TracIn's cost
    grows with L0, so a realistic sparsity matters; the dense steps do not care."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    from ssae_utils.sae.handle import as_handle

    gen = torch.Generator(device=device).manual_seed(seed)
    d_in, d_sae = shapes.d_in, shapes.d_sae
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, dtype="float32", device=device))
    with torch.no_grad():
        W_dec = torch.randn(d_sae, d_in, device=device, generator=gen)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(W_dec)
        sae.W_enc.copy_(W_dec.T)
        sae.b_dec.zero_()
        calib = torch.randn(min(4 * shapes.batch_tokens, 4096), d_in, device=device, generator=gen)
        pre = calib @ sae.W_enc
        k = max(1, round(calib.shape[0] * shapes.target_l0 / d_sae))  # tokens per feature that fire
        sae.b_enc.copy_(-pre.topk(k, dim=0).values[-1])
    return as_handle(sae.eval())


def random_acts(n: int, d: int, device: str, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(n, d, device=device, generator=gen)


# --------------------------------------------------------------------------- section b: SSAE step
FINETUNE_VARIANTS = {  # name -> (TF32 matmuls, autocast dtype)
    "fp32": (False, None),
    "tf32": (True, None),
    "bf16_autocast": (False, torch.bfloat16),
}


def finetune_step(stack, optimizer, x: torch.Tensor, lambdas: torch.Tensor, cfg, autocast_dtype) -> torch.Tensor:
    """One optimiser step of ``ssae_utils.sae.finetune.finetune`` (its loop body, which is
    not a function of its own there), on the module's own pieces: ``stack_losses``,
    ``sae_objective``, the unit-norm decoder projection and renormalisation, one Adam over
    the stack. The batch is given (``finetune`` reads it from the CPU activation store)."""
    from ssae_utils.sae.term import sae_objective
    from ssae_utils.sae.finetune import stack_losses

    autocast = torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with autocast:
        mse, penalty, _ = stack_losses(stack, x, lambdas, cfg.decoder)
        per_sae = sae_objective(mse, penalty, cfg.tilt, None)
    if not torch.isfinite(per_sae).all():  # finetune checks this every step (a sync, kept)
        raise FloatingPointError(f"non-finite finetuning loss {per_sae.tolist()}")
    optimizer.zero_grad(set_to_none=True)
    per_sae.float().sum().backward()
    if cfg.decoder == "unit_norm":
        stack.project_decoder_grad()
    optimizer.step()
    if cfg.decoder == "unit_norm":
        stack.normalize_decoder()
    return per_sae.detach()


def run_finetune_step(shapes: Shapes, device: str, budget: Budget, result: SectionResult) -> None:
    from ssae_utils.sae.finetune import FinetuneConfig, SAEStack

    sae = random_sae(shapes, device)
    grid = [round(0.25 * 2 ** (i / 2), 4) for i in range(shapes.n_lambdas)]  # any grid costs the same
    cfg = FinetuneConfig(l1_coefficients=grid, batch_size=shapes.batch_tokens)  # unit_norm decoder, ERM
    # on the stack's device: finetune() keeps lambdas on the CPU, fine only for a CPU stack
    lambdas = torch.tensor(cfg.l1_coefficients, dtype=torch.float32, device=device)
    x = random_acts(shapes.batch_tokens, shapes.d_in, device, seed=1)
    result.details.update(d_in=shapes.d_in, d_sae=shapes.d_sae, batch_tokens=shapes.batch_tokens,
                          n_lambdas=shapes.n_lambdas, lambdas=grid, decoder=cfg.decoder, tilt=cfg.tilt.label(),
                          timed_steps=shapes.repeats, warmup_steps=shapes.warmup,
                          replicates="ssae_utils.sae.finetune.finetune's loop body (stack_losses, sae_objective, "
                                     "decoder projection/renorm, Adam), called on a random batch on the device")
    per_variant_s = needs_s("finetune_step", shapes) / len(FINETUNE_VARIANTS)
    # 6 matmuls of 2*K*B*d_in*d_sae flops: encoder and decoder forward, two each backward
    flops = 12 * shapes.n_lambdas * shapes.batch_tokens * shapes.d_in * shapes.d_sae
    for name, (use_tf32, autocast_dtype) in FINETUNE_VARIANTS.items():
        if budget.remaining() < per_variant_s:
            result.details.setdefault("skipped_variants", []).append(name)
            continue
        stack = SAEStack.from_sae(sae, shapes.n_lambdas, act_scale=1.0)  # fresh weights and Adam state
        optimizer = torch.optim.Adam(stack.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
        reset_peak(device)
        losses: list[torch.Tensor] = []
        with tf32(use_tf32):
            seconds = timed(lambda: losses.append(finetune_step(stack, optimizer, x, lambdas, cfg, autocast_dtype)),
                            device, shapes.warmup, shapes.repeats)
        result.numbers[f"{name}.ms_per_step"] = seconds * 1e3
        result.numbers[f"{name}.tokens_per_s"] = shapes.batch_tokens / seconds
        result.numbers[f"{name}.sae_tokens_per_s"] = shapes.n_lambdas * shapes.batch_tokens / seconds
        result.numbers[f"{name}.matmul_tflops"] = flops / seconds / 1e12
        result.numbers[f"{name}.peak_mem_gib"] = peak_gib(device)
        result.details[f"{name}.last_objective"] = losses[-1].tolist()
        del stack, optimizer, losses
    if device == "cpu":
        result.details["note"] = "tf32 only affects CUDA matmuls: on the CPU it equals fp32"


# --------------------------------------------------------------------------- section c: TracIn
def run_tracin(shapes: Shapes, device: str, budget: Budget, result: SectionResult) -> None:
    from ssae_utils.tracin import TracInConfig, seed_gradient, tracin_scores

    sae = random_sae(shapes, device)
    cfg = TracInConfig(l1_coefficient=1.0, batch_tokens=shapes.batch_tokens)  # decoder_norm L1, all params
    seed = random_acts(shapes.tracin_seed_tokens, shapes.d_in, device, seed=2)
    n_docs, doc_len = shapes.tracin_docs, shapes.tracin_doc_len
    cand = random_acts(n_docs * doc_len, shapes.d_in, device, seed=3)
    doc_index = torch.arange(n_docs, device=device).repeat_interleave(doc_len)
    reset_peak(device)
    grad_s = timed(lambda: seed_gradient(sae, seed, cfg), device, 1, max(1, shapes.repeats // 3))
    grad = seed_gradient(sae, seed, cfg)
    scores: list[torch.Tensor] = []
    score_s = timed(lambda: scores.append(tracin_scores(sae, None, cand, doc_index, n_docs, cfg, seed_grad=grad)),
                    device, 1, max(1, shapes.repeats // 3))
    if not torch.isfinite(scores[-1]).all():
        raise FloatingPointError("non-finite TracIn scores")
    with torch.no_grad():
        l0 = float((sae.encode(cand[: shapes.batch_tokens]) > 0).float().sum(-1).mean())
    result.numbers.update({
        "tokens_per_s": cand.shape[0] / score_s,
        "docs_per_s": n_docs / score_s,
        "seconds_per_pool": score_s,
        "seed_gradient_tokens_per_s": seed.shape[0] / grad_s,
        "peak_mem_gib": peak_gib(device),
        "l0": l0,
    })
    result.details.update(d_in=shapes.d_in, d_sae=shapes.d_sae, docs=n_docs, doc_len=doc_len,
                          seed_tokens=shapes.tracin_seed_tokens, batch_tokens=cfg.batch_tokens,
                          l1_weighting=cfg.l1_weighting, target_l0=shapes.target_l0)


# --------------------------------------------------------------------------- section d: LM
# TransformerLens 3.9's config for "google/gemma-2b" (loading_from_pretrained.py,
# convert_hf_model_config), copied so nothing is looked up at run time; the test checks the
# copy against TransformerLens' own. tokenizer_name is left out: it would load from the hub.
GEMMA_2B_TL = {
    "d_model": 2048, "d_head": 256, "n_heads": 8, "d_mlp": 16384, "n_layers": 18, "n_ctx": 8192,
    "eps": 1e-06, "d_vocab": 256000, "act_fn": "gelu", "initializer_range": 0.02,
    "normalization_type": "RMS", "rotary_base": 10000, "rotary_dim": 256,
    "positional_embedding_type": "rotary", "use_attn_scale": True, "n_key_value_heads": 1,
    "gated_mlp": True, "final_rms": True, "original_architecture": "GemmaForCausalLM",
    "quantization_method": None,
}


def gemma2b_config(shapes: Shapes, device: str):
    """HookedTransformerConfig of Gemma-2b (randomly initialised), shrunk for --tiny."""
    from transformer_lens import HookedTransformerConfig

    cfg = dict(GEMMA_2B_TL)
    if shapes != FULL:
        cfg.update(d_model=shapes.d_in, d_head=shapes.lm_d_head, rotary_dim=shapes.lm_d_head, n_heads=shapes.lm_heads,
                   d_mlp=shapes.lm_d_mlp, n_layers=shapes.lm_layers, d_vocab=shapes.lm_vocab,
                   n_ctx=shapes.lm_n_ctx or cfg["n_ctx"])
    return HookedTransformerConfig(**cfg, model_name="gemma-2b-random", init_weights=True, seed=0,
                                   dtype=torch.float32, device=device)


def build_tl(shapes: Shapes, device: str):
    """The random HookedTransformer, its parameters created (and initialised) on the device:
    building 2.5B parameters on the CPU first would take longer than the measurements."""
    from transformer_lens import HookedTransformer

    with torch.device(device), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")  # the project uses it
        return HookedTransformer(gemma2b_config(shapes, device))


def wrap_lm(tl, shapes: Shapes):
    """The project's ``HookedLM`` around it: stage 03 calls exactly these methods."""
    from types import SimpleNamespace

    from ssae_utils.model.hooked import HookedLM

    tokenizer = SimpleNamespace(bos_token_id=BOS_ID, eos_token_id=1)  # tokens are given, never text
    return HookedLM(tl, tokenizer, name="gemma-2b-random", hook_layer=shapes.hook_layer, fingerprint="random",
                    context_length=max(shapes.contexts))


def lm_variant(lm, splice, shapes: Shapes, device: str, ctx: int, prefix: str, result: SectionResult) -> None:
    """Forward to the hook and spliced CE at one context length and dtype."""
    from ssae_utils.sae.evaluation import spliced_ce

    batch = max(1, shapes.lm_tokens_per_call // ctx)
    gen = torch.Generator().manual_seed(ctx)
    # on the CPU, as stage 03 passes them: HookedLM moves each batch to the model's device
    tokens = torch.randint(0, lm.vocab_size, (batch, ctx), generator=gen)
    tokens[:, 0] = BOS_ID
    lengths = torch.full((batch,), ctx, dtype=torch.long)
    n = batch * ctx
    reset_peak(device)
    fwd_s = timed(lambda: lm.resid_at_hook(tokens), device, shapes.lm_warmup, shapes.lm_repeats)
    result.numbers[f"{prefix}.forward_l{shapes.hook_layer}.tokens_per_s"] = n / fwd_s
    result.numbers[f"{prefix}.forward_l{shapes.hook_layer}.peak_mem_gib"] = peak_gib(device)
    reset_peak(device)
    ce: list[dict[str, float]] = []
    run = lambda: ce.append(spliced_ce(lm, tokens, lengths, {"sae": splice}, batch_size=batch, include_clean=False))  # noqa: E731
    ce_s = timed(run, device, shapes.lm_warmup, shapes.lm_repeats)
    result.numbers[f"{prefix}.patched_ce.tokens_per_s"] = n / ce_s
    result.numbers[f"{prefix}.patched_ce.peak_mem_gib"] = peak_gib(device)
    result.details[f"{prefix}.batch"] = batch
    result.details[f"{prefix}.patched_ce_nats"] = ce[-1]["sae"]
    if not math.isfinite(ce[-1]["sae"]):
        raise FloatingPointError(f"non-finite patched CE at {prefix}")


def run_patched_ce(shapes: Shapes, device: str, budget: Budget, result: SectionResult) -> None:
    from ssae_utils.sae.evaluation import sae_splice

    start = time.perf_counter()
    tl = build_tl(shapes, device)
    sync(device)
    result.details["build_seconds"] = time.perf_counter() - start
    result.details["n_params"] = sum(p.numel() for p in tl.parameters())
    result.details["config"] = {k: getattr(tl.cfg, k) for k in GEMMA_2B_TL if hasattr(tl.cfg, k)}
    result.details["config_matches_transformer_lens"] = _matches_tl_gemma2b()
    splice = sae_splice(random_sae(shapes, device))  # fp32 SAE on a bf16 model: as in the pipeline
    per_variant_s = needs_s("patched_ce", shapes) / (2 * len(shapes.contexts) + 2)  # + the build
    for dtype_name in ("fp32", "bf16"):
        if dtype_name == "bf16":
            tl = tl.to(torch.bfloat16, print_details=False)  # as model.dtype=bfloat16 loads it; cfg.dtype follows
        lm = wrap_lm(tl, shapes)
        for ctx in shapes.contexts:
            prefix = f"{dtype_name}.ctx{ctx}"
            if budget.remaining() < per_variant_s:
                result.details.setdefault("skipped_variants", []).append(prefix)
                continue
            lm_variant(lm, splice, shapes, device, ctx, prefix, result)
    result.details.update(hook=f"blocks.{shapes.hook_layer}.hook_resid_post", ce_chunk_tokens=lm.ce_chunk_tokens,
                          tokens_per_call=shapes.lm_tokens_per_call, repeats=shapes.lm_repeats)
    del tl, lm


def _matches_tl_gemma2b() -> bool | str:
    """Whether GEMMA_2B_TL equals TransformerLens' own gemma-2b config (its name-based
    branch fetches nothing); the reason when it cannot tell."""
    try:
        from transformer_lens.loading_from_pretrained import convert_hf_model_config

        theirs = convert_hf_model_config("google/gemma-2b")
    except Exception as err:  # noqa: BLE001 -- informational only
        return f"unknown ({type(err).__name__}: {err})"
    theirs.pop("tokenizer_name", None)
    return theirs == GEMMA_2B_TL


# --------------------------------------------------------------------------- section a: smoke
NOTEBOOK_START = re.compile(r"^\[(\d+)/(\d+)\] (\S+) \(profile")
NOTEBOOK_DONE = re.compile(r"^\s+done in ([\d.]+) s")
NOTEBOOK_FAILED = re.compile(r"FAILED in (\S+?)\.ipynb, (.*)")
NOTEBOOK_SKIPPED = re.compile(r"^\[(\d+)/(\d+)\] (\S+): up to date, skipped")


def parse_run_all(output: str) -> dict[str, dict[str, Any]]:
    """Per-notebook outcome from run_all.py's progress lines: ok (with seconds), failed
    (with the cell and error), skipped, or unfinished (started, then the run was stopped)."""
    notebooks: dict[str, dict[str, Any]] = {}
    current = None
    for line in output.splitlines():
        if m := NOTEBOOK_START.match(line):
            current = m.group(3)
            notebooks[current] = {"status": "unfinished"}
        elif m := NOTEBOOK_SKIPPED.match(line):
            notebooks[m.group(3)] = {"status": "skipped"}
        elif (m := NOTEBOOK_DONE.match(line)) and current:
            notebooks[current] = {"status": "ok", "seconds": float(m.group(1))}
            current = None
        elif m := NOTEBOOK_FAILED.search(line):
            notebooks[m.group(1)] = {"status": "failed", "detail": m.group(2)}
            current = None
    return notebooks


def nonfinite_in_results(folder: Path) -> dict[str, Any]:
    """Every number in the stage results (JSON) checked for NaN/inf; nulls counted apart
    (some fields are legitimately null: 577 of them in a CPU smoke run)."""
    files: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        counts = {"numbers": 0, "nonfinite": 0, "nulls": 0}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))  # NaN/Infinity parse to floats
        except (OSError, ValueError) as err:
            bad.append(f"{path.name}: unreadable ({err})")
            files[path.name] = counts
            continue
        stack: list[tuple[str, Any]] = [(path.name, data)]
        while stack:
            where, value = stack.pop()
            if isinstance(value, dict):
                stack.extend((f"{where}.{k}", v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
            elif value is None:
                counts["nulls"] += 1
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                counts["numbers"] += 1
                if not math.isfinite(value):
                    counts["nonfinite"] += 1
                    bad.append(where)
        files[path.name] = counts
    return {"files": files, "nonfinite_paths": bad[:50], "n_nonfinite": len(bad)}


def smoke_env(tmp: Path) -> dict[str, str]:
    """The caller's environment with every project folder in ``tmp`` (nothing in the repo
    changes), this repository first on the path (the kernels inherit it), and no API key:
    notebook 06 then stays offline."""
    env = dict(os.environ)
    for name, sub in (("SSAE_CACHE", "cache"), ("SSAE_RESULTS", "results"), ("SSAE_FIGURES", "figures"),
                      ("SSAE_RUNS", "runs")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp / sub)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("ANTHROPIC_API_KEY", None)
    return env


def run_bounded(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, bool]:
    """(exit code or None, merged stdout+stderr, timed out). On timeout the run_all process
    group and the notebook kernels it started (in sessions of their own) are killed by pid."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1.0))
        return proc.returncode, out, False
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        try:
            out, _ = proc.communicate(timeout=15)  # what it printed before the kill
        except subprocess.TimeoutExpired:
            out = ""
        return None, out or "", True
    except BaseException:  # Ctrl-C / SIGTERM of this script: never leave the pipeline running
        _kill_tree(proc.pid)
        raise


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively, from /proc (Linux; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    victims = _descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # run_all and whatever shares its session
    for child in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def run_smoke(device: str, budget: Budget, timeout_cap: float, result: SectionResult) -> None:
    import shutil

    timeout = min(timeout_cap, budget.remaining() - 10)
    tmp = Path(tempfile.mkdtemp(prefix="ssae-gpu-check-smoke-"))
    knob = "cuda" if device.startswith("cuda") else "cpu"  # ModelConfig.device takes no index
    cmd = [sys.executable, str(REPO / "run_all.py"), "--profile", "smoke", "--set", f"model.device={knob}"]
    result.details.update(command=" ".join(cmd[1:]), timeout_s=round(timeout, 1), folder=str(tmp))
    start = time.perf_counter()
    code, output, timed_out = run_bounded(cmd, smoke_env(tmp), timeout)
    wall = time.perf_counter() - start
    notebooks = parse_run_all(output)
    finite = nonfinite_in_results(tmp / "results" / "smoke")
    n_ok = sum(nb["status"] == "ok" for nb in notebooks.values())
    result.numbers.update(wall_s=wall, notebooks_ok=float(n_ok), result_files=float(len(finite["files"])),
                          nonfinite_values=float(finite["n_nonfinite"]))
    result.details.update(exit_code=code, timed_out=timed_out, notebooks=notebooks, results=finite)
    problems = []
    if timed_out:
        problems.append(f"timed out after {timeout:.0f} s")
    elif code != 0:
        problems.append(f"run_all.py exited with {code}")
    problems += [f"{name}: {nb.get('detail', nb['status'])}" for name, nb in notebooks.items() if nb["status"] != "ok"]
    if finite["n_nonfinite"]:
        problems.append(f"{finite['n_nonfinite']} non-finite numbers in the results, e.g. {finite['nonfinite_paths'][:3]}")
    if problems:
        result.details["output_tail"] = output[-4000:]
        raise RuntimeError("; ".join(problems))  # the folder is kept for a look
    shutil.rmtree(tmp, ignore_errors=True)
    result.details["folder"] = f"{tmp} (removed)"


# --------------------------------------------------------------------------- driver
def run_section(name: str, args: argparse.Namespace, shapes: Shapes, budget: Budget, report: Report, out: Path) -> None:
    result = report.sections[name]
    needs = needs_s(name, shapes)
    if name in args.skip:
        result.status, result.reason = "skipped", "--skip"
        return
    if budget.remaining() < needs:
        result.status = "skipped"
        result.reason = f"budget: {budget.remaining():.0f} s left of {budget.total:.0f} s, this section needs ~{needs:.0f} s"
        return
    result.status = "running"
    report.write(out)
    start = time.perf_counter()
    try:
        if name == "smoke":  # bounded by its own subprocess timeout
            run_smoke(args.device, budget, args.smoke_timeout_s, result)
        else:
            run = {"finetune_step": run_finetune_step, "tracin": run_tracin, "patched_ce": run_patched_ce}[name]
            with alarm(budget.remaining() - 5):
                run(shapes, args.device, budget, result)
        skipped = result.details.get("skipped_variants")
        result.status = "partial" if skipped else "ok"
        if skipped:
            result.reason = f"budget: variants {skipped} not run"
    except BaseException as err:  # a section never takes the report down with it
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}"[:2000]
        result.details["traceback"] = traceback.format_exc()[-3000:]
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise  # after recording it: main() writes the report on the way out
    finally:
        result.seconds = time.perf_counter() - start
        gc.collect()
        if args.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="every shape ~100x smaller: runs on a CPU in seconds")
    parser.add_argument("--budget-s", type=float, default=480.0, help="total seconds; later sections are skipped when it nears")
    parser.add_argument("--smoke-timeout-s", type=float, default=240.0, help="at most this long for the smoke run")
    parser.add_argument("--skip", nargs="+", default=[], choices=SECTIONS, metavar="SECTION",
                        help=f"sections not to run: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON report (default {DEFAULT_OUT.relative_to(REPO)})")
    return parser.parse_args(argv)


def _sigterm(signum, frame):
    raise SystemExit(f"killed by signal {signum}")  # unwinds through run_section, which records it


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    shapes = TINY if args.tiny else FULL
    previous_sigterm = signal.signal(signal.SIGTERM, _sigterm)
    report = Report(started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), budget_s=args.budget_s, device=args.device,
                    tiny=args.tiny, argv=sys.argv[1:] if argv is None else list(argv),
                    sections={name: SectionResult(name) for name in SECTIONS})
    try:
        report.machine = machine_info(args.device)
    except Exception as err:  # noqa: BLE001 -- still measure what can be measured
        report.machine = {"error": f"{type(err).__name__}: {err}"}
    report.machine["shapes"] = asdict(shapes)
    cuda_missing = args.device.startswith("cuda") and not torch.cuda.is_available()
    try:
        for name in SECTIONS:
            if cuda_missing:
                report.sections[name] = replace(report.sections[name], status="skipped",
                                                reason=f"--device {args.device} but torch sees no CUDA device")
            else:
                run_section(name, args, shapes, budget, report, args.out)
            report.elapsed_s = budget.elapsed()
            report.write(args.out)
            _print_section(report.sections[name])
        report.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    finally:
        report.elapsed_s = budget.elapsed()
        report.write(args.out)
        signal.signal(signal.SIGTERM, previous_sigterm)
    print(f"wrote {args.out} ({report.elapsed_s:.1f} s)")
    return 1 if cuda_missing or any(s.status == "failed" for s in report.sections.values()) else 0


def _print_section(result: SectionResult) -> None:
    seconds = f"{result.seconds:.1f} s" if result.seconds is not None else "-"
    print(f"{result.name:<14} {result.status:<8} {seconds:>8}  {result.error or result.reason or ''}", flush=True)
    for key, value in result.numbers.items():
        print(f"    {key:<40} {value:.4g}" if isinstance(value, float) else f"    {key:<40} {value}")


if __name__ == "__main__":
    sys.exit(main())
