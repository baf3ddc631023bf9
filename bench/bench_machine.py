"""What kind of machine a run time was measured on: CPU model, AVX-512 / native bf16, and
measured fp32 and bf16 matmul rates (GFLOP/s) at the shapes the embedded profile uses most
(the 262k-token unembedding: [512, 640] x [640, 8192] blocks).

Two 2-core machines ran the same code at 738 and 906 tokens/s to layer 12; next to a run
time this says which kind a number came from. Writes bench/results/machine.json.

    python bench/bench_machine.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results" / "machine.json"


def cpu_info() -> dict[str, object]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "native_bf16": bool({"avx512_bf16", "amx_bf16"} & flags), "torch": torch.__version__}


def matmul_rate(dtype: torch.dtype, m: int = 512, k: int = 640, n: int = 8192, seconds: float = 2.0) -> float:
    """Best-of-repeats GFLOP/s of an [m, k] x [k, n] matmul in ``dtype``."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b  # warm-up
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def main() -> dict[str, object]:
    out = {**cpu_info(), "fp32_gflops": matmul_rate(torch.float32), "bf16_gflops": matmul_rate(torch.bfloat16),
           "loadavg_1min": os.getloadavg()[0]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
