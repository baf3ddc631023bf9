#!/usr/bin/env python
"""What spreading stage 03 over torchrun processes costs on this machine: the smoke sweep
(14 lambda grids, 2 domains) with 2 processes x 1 torch thread (``SSAE_NPROC=2``: torchrun,
gloo) against 1 process x 2 threads (no torchrun).

    python bench/bench_dist.py                  # builds notebooks 00-02 of smoke first (~1 min)
    python bench/bench_dist.py --upstream DIR   # reuse a folder holding cache/ and results/ of 00-02

Each variant runs ``run_finetune`` in a fresh process on a fresh copy of the upstream cache
(so both cache the same activations and train every grid), one run each. Reported: the
stage's wall time, and for the torchrun variant the part spent under torchrun (start-up,
activation caching and training on the ranks) and the notebook's evaluation after it.
``ratio`` > 1 means the split is slower. Writes bench/results/dist_smoke.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ssae_utils.io import write_json_atomic  # noqa: E402

CODE = "from ssae_utils.config import load_profile\nfrom ssae_utils.pipeline.finetune import run_finetune\nrun_finetune(load_profile('smoke'))"


def env_for(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSAE_NPROC", "SSAE_NNODES", "SSAE_RDZV", "SSAE_DIST", "SSAE_TORCH"))}
    env.update({"SSAE_CACHE": str(folder / "cache"), "SSAE_RESULTS": str(folder / "results"), "SSAE_FIGURES": str(folder / "figures"),
                "SSAE_RUNS": str(folder / "runs"), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                "MALLOC_MMAP_THRESHOLD_": str(4 * 2**30), "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30), **extra})
    return env


def run_variant(upstream: Path, work: Path, name: str, **extra: str) -> dict:
    folder = work / name
    for part in ("cache", "results"):
        shutil.copytree(upstream / part, folder / part)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, env=env_for(folder, **extra), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    out = {"wall_s": round(wall, 1)}
    torchrun = re.search(r"torchrun finished in ([\d.]+) s", proc.stdout)
    if torchrun:
        out["torchrun_s"] = float(torchrun.group(1))
        out["after_torchrun_s"] = round(wall - out["torchrun_s"], 1)
    results = json.loads((folder / "results" / "smoke" / "03_finetune.json").read_text())
    out["train_s_sum_in_rows"] = round(sum({r["ssae_folder"].rsplit("/", 1)[0]: r["train_s"] or 0 for r in results["rows"]}.values()), 1)
    out["grids"] = len({r["ssae_folder"].rsplit("/", 1)[0] for r in results["rows"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=Path, default=None, help="a folder with cache/ and results/ of smoke notebooks 00-02")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        work = Path(tmp)
        upstream = args.upstream
        if upstream is None:
            upstream = work / "upstream"
            proc = subprocess.run([sys.executable, str(REPO / "run_all.py"), "--profile", "smoke", "--only", "00", "01", "02"],
                                  cwd=REPO, env=env_for(upstream), capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        single = run_variant(upstream, work, "single", SSAE_TORCH_THREADS="2")
        split = run_variant(upstream, work, "torchrun", SSAE_NPROC="2")   # ranks: 2 cores // 2 = 1 thread each
    out = {
        "profile": "smoke", "cores": len(os.sched_getaffinity(0)), "runs": 1,
        "single_process_2_threads": single, "torchrun_2_processes_1_thread": split,
        "ratio_wall": round(split["wall_s"] / single["wall_s"], 2),
        "note": "one run each, on a 2-core machine shared with other jobs (so thread contention is real and noisy). "
                "The smoke sweep's 14 grids train in seconds, so the split's fixed cost (torchrun, an interpreter per "
                "rank loading torch, the model, corpora and GSAE, then the notebook's own evaluation) dominates; "
                "train_s_sum_in_rows is the training time the grids record (the torchrun variant's on 1 thread each).",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(out, indent=2))
    write_json_atomic(REPO / "bench" / "results" / "dist_smoke.json", out)


if __name__ == "__main__":
    main()
