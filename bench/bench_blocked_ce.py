#!/usr/bin/env python
"""Unembedding + CE of the patched-CE evaluation: vocabulary-blocked online logsumexp vs full logits.

    python bench/bench_blocked_ce.py                      # Gemma 3 270M (embedded profile), ~4 min
    python bench/bench_blocked_ce.py --profile smoke      # tiny model, seconds (the ratio means nothing there)

``ours`` is ``HookedLM.ce_from_final``: per chunk of ``ce_chunk_tokens`` (512) positions, the
final norm, then for each block of ``UNEMBED_BLOCK`` (8192) vocabulary columns the block's
logits (bias and soft-cap as in ``logits_from_final``) folded into a running max and sum
(online logsumexp, float32); the largest temporary is [512, 8192]. ``baseline`` is what
``ce_from_final`` did before, restated here: ``logits_from_final`` on each 512-position chunk
(the full [512, 262144] float32 logits, 512 MB) then ``F.cross_entropy``. ``transposed`` is
``ours`` reading a vocabulary-major contiguous copy of W_U (``W_U.T.contiguous()``, made once,
not timed), the layout question of whether each block should be contiguous in memory.

Inputs: the final residuals (after all layers, before the final norm) of real text, the
repository's own README/CLAIMS/docs packed into ``--contexts`` contexts of ``--context-length``
tokens (nothing downloaded; the model is ``load_model``'s, from the cache). Only the CE step
is timed; each repeat runs the three paths in turn (interleaved, so that load from other
processes hits them alike) after one untimed warm-up each. Reports wall-clock tokens/s (best
and median of the repeats), process CPU seconds, how many cores other processes kept busy
meanwhile (/proc/stat, 10 ms resolution; this machine is shared), the ratios, the max
per-token CE difference to the baseline, and each path's error against the float64
logsumexp of the same float32 logits.

Runs twice, each in a fresh process: with glibc's default malloc (each 512 MB logits buffer
mapped and zero-filled anew) and with ``ssae_utils.runtime.ALLOCATOR_ENV`` (what run_all.py's
notebook kernels use: large blocks reused from the heap), since the baseline's cost depends on
it. Writes both to bench/results/blocked_ce.json (``--out`` to change), plus a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ssae_utils.model.hooked as hooked  # noqa: E402
from ssae_utils.config import load_profile  # noqa: E402
from ssae_utils.io import write_json_atomic  # noqa: E402
from ssae_utils.model.registry import load_model  # noqa: E402
from ssae_utils.runtime import ALLOCATOR_ENV  # noqa: E402


QUIET = 0.1  # cores busy with other processes below which a repeat counts as quiet


def machine() -> dict:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model_name = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), None)
    except OSError:
        model_name = None
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpu_model": model_name or platform.processor(), "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "allocator_env": {k: os.environ[k] for k in ALLOCATOR_ENV if k in os.environ} or "glibc defaults"}


def cpu_busy_s() -> float | None:
    """Seconds of CPU time all processes of the machine have used so far (/proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")   # all but idle and iowait


def repo_text() -> list[str]:
    paths = [REPO / "README.md", REPO / "CLAIMS.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
    return [p.read_text() for p in paths if p.exists()]


def baseline_ce(lm, final: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The materialising ce_from_final this replaced (per token, no mask): full-vocabulary
    logits per chunk of ce_chunk_tokens positions, then F.cross_entropy."""
    x = final[:, :-1].reshape(-1, final.shape[-1])
    targets = tokens[:, 1:].reshape(-1)
    losses = []
    for start in range(0, x.shape[0], lm.ce_chunk_tokens):
        logits = lm.logits_from_final(x[start : start + lm.ce_chunk_tokens])
        losses.append(F.cross_entropy(logits, targets[start : start + lm.ce_chunk_tokens], reduction="none"))
        del logits
    return torch.cat(losses).reshape(tokens.shape[0], -1)


def float64_reference(lm, final: torch.Tensor, tokens: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Per-token CE of the same float32 logits (``logits_from_final``) with the logsumexp and
    the subtraction in float64: what both float32 paths approximate."""
    x = final[:, :-1].reshape(-1, final.shape[-1])
    targets = tokens[:, 1:].reshape(-1)
    out = []
    for start in range(0, x.shape[0], chunk):
        logits = lm.logits_from_final(x[start : start + chunk]).double()
        out.append(torch.logsumexp(logits, 1) - logits.gather(1, targets[start : start + chunk, None]).squeeze(1))
        del logits
    return torch.cat(out).reshape(tokens.shape[0], -1)


def transposed_ce(lm, W_vocab_major: torch.Tensor, final: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """ce_from_final's blocked CE with W_U read from a vocabulary-major copy: ``W.T`` is a
    [d, vocab] view whose column blocks are contiguous rows of the copy."""
    cap = lm.tl.cfg.output_logits_soft_cap
    cap = float(cap) if hooked.softcap_enabled(cap) else None
    bias = lm.b_U if lm._has_unembed_bias else None
    x = final[:, :-1].reshape(-1, final.shape[-1])
    targets = tokens[:, 1:].reshape(-1)
    losses = []
    for start in range(0, x.shape[0], lm.ce_chunk_tokens):
        stop = start + lm.ce_chunk_tokens
        losses.append(hooked._BlockedCE.apply(lm.final_norm(x[start:stop]), W_vocab_major.T, bias, targets[start:stop],
                                              cap, hooked.UNEMBED_BLOCK))
    return torch.cat(losses).reshape(tokens.shape[0], -1)


def measure(args: argparse.Namespace) -> dict:
    """One process's measurement (the allocator settings are those it was started with)."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lm = load_model(load_profile(args.profile).model)
    tokens = lm.tokenize_contexts(repo_text(), args.context_length)[: args.contexts]
    if tokens.shape[0] < args.contexts:
        raise SystemExit(f"the repository's text fills only {tokens.shape[0]} contexts of {args.context_length} tokens")
    with torch.no_grad():
        final = lm.run_from_hook(lm.resid_at_hook(tokens))
        W_vocab_major = lm.W_U.T.contiguous()
        paths = {
            "baseline": lambda: baseline_ce(lm, final, tokens),
            "ours": lambda: lm.ce_from_final(final, tokens, per_token=True),
            "transposed": lambda: transposed_ce(lm, W_vocab_major, final, tokens),
        }
        ce = {name: run() for name, run in paths.items()}  # warm-up, and the values compared
        reference = float64_reference(lm, final, tokens)
        wall: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        others: dict[str, list[float | None]] = {name: [] for name in paths}   # cores busy with other processes
        load_before = os.getloadavg()
        for _ in range(args.repeats):
            for name, run in paths.items():
                t, c, busy = time.perf_counter(), time.process_time(), cpu_busy_s()
                run()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                after = cpu_busy_s()
                others[name].append(None if busy is None or after is None
                                    else max(0.0, (after - busy - cpu[name][-1]) / wall[name][-1]))
        load_after = os.getloadavg()
    n = int(ce["baseline"].numel())
    result = {
        "profile": args.profile, "model": lm.name, "vocab": lm.vocab_size, "d_model": lm.d_model,
        "dtype": str(lm.dtype).removeprefix("torch."), "soft_cap": lm.tl.cfg.output_logits_soft_cap,
        "unembed_bias": lm._has_unembed_bias, "contexts": args.contexts, "predictions": n,
        "ce_chunk_tokens": lm.ce_chunk_tokens, "unembed_block": hooked.UNEMBED_BLOCK, "repeats": args.repeats,
        "largest_temporary_mb": {"baseline": lm.ce_chunk_tokens * lm.vocab_size * 4 / 2**20,
                                 "ours": lm.ce_chunk_tokens * min(hooked.UNEMBED_BLOCK, lm.vocab_size) * 4 / 2**20},
        "transposed_copy_mb": W_vocab_major.numel() * W_vocab_major.element_size() / 2**20,
        "machine": machine(),
        "loadavg_1min_before_after": [load_before[0], load_after[0]],
        "mean_ce": {name: float(v.mean()) for name, v in ce.items()},
        "max_abs_ce_diff_vs_baseline": {name: float((v - ce["baseline"]).abs().max()) for name, v in ce.items() if name != "baseline"},
        # error against the float64 logsumexp of the same float32 logits: max abs, and mean (bias)
        "ce_error_vs_float64": {name: {"max_abs": float((v.double() - reference).abs().max()),
                                       "mean": float((v.double() - reference).mean())} for name, v in ce.items()},
    }
    # repeats during which other processes kept less than QUIET cores busy (all of them if none was)
    quiet = {name: [w for w, o in zip(wall[name], others[name]) if o is not None and o < QUIET] or wall[name]
             for name in paths}
    for name in paths:
        result[name] = {"tokens_per_s_best": n / min(wall[name]), "tokens_per_s_median": n / statistics.median(wall[name]),
                        "tokens_per_s_median_quiet": n / statistics.median(quiet[name]), "quiet_repeats": len(quiet[name]),
                        "wall_s": wall[name], "cpu_s": cpu[name], "other_processes_cores": others[name]}
    for name in ("ours", "transposed"):
        result[f"speedup_{name}"] = {
            "best": min(wall["baseline"]) / min(wall[name]),
            "median": statistics.median(wall["baseline"]) / statistics.median(wall[name]),
            "median_quiet": statistics.median(quiet["baseline"]) / statistics.median(quiet[name]),
            "cpu_time": sum(cpu["baseline"]) / sum(cpu[name]),
        }
    result["transposed_vs_ours"] = {"best": min(wall["ours"]) / min(wall["transposed"]),
                                    "median_quiet": statistics.median(quiet["ours"]) / statistics.median(quiet["transposed"])}
    return result


WORKER_MARK = "BLOCKED_CE_RESULT "
SETTINGS = {"glibc_defaults": {}, "allocator_env": ALLOCATOR_ENV}   # allocator_env: what run_all.py's kernels run with


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "embedded"), default="embedded")
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--context-length", type=int, default=129, help="tokens per context (predictions: one fewer)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--allocator", choices=(*SETTINGS, "both"), default="both",
                        help="glibc's malloc settings (read at start-up, so each runs in its own process)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "blocked_ce.json")
    args = parser.parse_args()
    if args.worker:
        print(WORKER_MARK + json.dumps(measure(args)), flush=True)
        return
    result: dict = {}
    for setting in SETTINGS if args.allocator == "both" else (args.allocator,):
        env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV} | SETTINGS[setting]
        argv = [sys.executable, __file__, "--worker", "--profile", args.profile, "--contexts", str(args.contexts),
                "--context-length", str(args.context_length), "--repeats", str(args.repeats)]
        argv += [] if args.threads is None else ["--threads", str(args.threads)]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO, check=False)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith(WORKER_MARK)), None)
        if out.returncode != 0 or line is None:
            raise SystemExit(f"the {setting} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        result[setting] = json.loads(line[len(WORKER_MARK):])
    result["summary"] = {
        setting: {**{f"{name}_tokens_per_s_median": r[name]["tokens_per_s_median"] for name in ("baseline", "ours", "transposed")},
                  "speedup_ours_median": r["speedup_ours"]["median"], "transposed_vs_ours_median_quiet": r["transposed_vs_ours"]["median_quiet"],
                  "max_abs_ce_diff": r["max_abs_ce_diff_vs_baseline"]["ours"],
                  "max_abs_error_vs_float64": {name: e["max_abs"] for name, e in r["ce_error_vs_float64"].items()},
                  "max_other_processes_cores": max((o for name in ("baseline", "ours", "transposed")
                                                    for o in r[name]["other_processes_cores"] if o is not None), default=None)}
        for setting, r in result.items()}
    write_json_atomic(args.out, result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
