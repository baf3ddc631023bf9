"""bench/gpu_check.py on the CPU: the --tiny run of its measuring sections, its JSON schema,
its budget handling, and that its pieces compute what the pipeline computes.

The smoke section (a whole run_all.py pipeline, minutes) is skipped here with --skip smoke;
its output parsing and result check are tested on their own.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"
MEASURED = ("finetune_step", "tracin", "patched_ce")


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    return proc, json.loads(out.read_text())


def _required_numbers(shapes) -> dict[str, list[str]]:
    lm = [f"{dtype}.ctx{ctx}.{what}.tokens_per_s" for dtype in ("fp32", "bf16") for ctx in shapes.contexts
          for what in (f"forward_l{shapes.hook_layer}", "patched_ce")]
    step = [f"{v}.{m}" for v in gpu_check.FINETUNE_VARIANTS for m in ("ms_per_step", "tokens_per_s")]
    return {"finetune_step": step, "tracin": ["tokens_per_s", "docs_per_s", "seed_gradient_tokens_per_s"],
            "patched_ce": lm}


def test_tiny_cpu_run_measures_every_section(tmp_path):
    proc, report = _run(tmp_path, "--skip", "smoke", "--budget-s", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["schema"] == gpu_check.SCHEMA and report["finished"]
    assert report["device"] == "cpu" and report["tiny"] is True
    assert report["machine"]["torch"] == torch.__version__
    assert set(report["sections"]) == set(gpu_check.SECTIONS)
    smoke = report["sections"]["smoke"]
    assert smoke["status"] == "skipped" and smoke["reason"] == "--skip"
    required = _required_numbers(gpu_check.TINY)
    for name in MEASURED:
        section = report["sections"][name]
        assert section["status"] == "ok", (name, section["error"], section["details"].get("traceback"))
        assert section["seconds"] > 0
        missing = [key for key in required[name] if section["numbers"].get(key) is None]
        assert not missing, (name, missing)
        for key, value in section["numbers"].items():
            if value is None:  # peak memory: CUDA only
                assert key.endswith("peak_mem_gib"), key
                continue
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, key, value)
    # the random SAE fires about as sparsely as asked (TracIn's cost depends on it)
    assert 0.5 * gpu_check.TINY.target_l0 <= report["sections"]["tracin"]["numbers"]["l0"] <= 2 * gpu_check.TINY.target_l0
    ce = [v for k, v in report["sections"]["patched_ce"]["details"].items() if k.endswith("patched_ce_nats")]
    assert len(ce) == 2 * len(gpu_check.TINY.contexts) and all(math.isfinite(v) and v > 0 for v in ce)
    assert report["sections"]["patched_ce"]["details"]["config_matches_transformer_lens"] is True


def test_exhausted_budget_skips_sections_and_still_writes_the_report(tmp_path):
    proc, report = _run(tmp_path, "--budget-s", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, section in report["sections"].items():
        assert section["status"] == "skipped", name
        assert section["reason"].startswith("budget:"), section["reason"]


def test_cuda_requested_without_cuda_is_recorded_not_a_crash(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc, report = _run(tmp_path, "--device", "cuda")  # the later --device wins
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert all(s["status"] == "skipped" and "no CUDA" in s["reason"] for s in report["sections"].values())


def test_step_is_finetunes_step():
    """The timed step, repeated, gives what ssae_utils.sae.finetune.finetune trains."""
    from ssae_utils.sae.finetune import FinetuneConfig, SAEStack, finetune

    shapes = gpu_check.TINY
    sae = gpu_check.random_sae(shapes, "cpu")
    cfg = FinetuneConfig(l1_coefficients=(0.5, 1.0, 2.0), steps=3, batch_size=shapes.batch_tokens, lr=1e-3,
                         lr_decay_steps=0, log_every=1)
    x = gpu_check.random_acts(shapes.batch_tokens, shapes.d_in, "cpu", seed=1)
    # one batch of exactly batch_size tokens: finetune's shuffled batches are all of x
    reference = finetune(sae, x, cfg, act_scale=1.0, progress=False).stack
    stack = SAEStack.from_sae(sae, 3, act_scale=1.0)
    optimizer = torch.optim.Adam(stack.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
    lambdas = torch.tensor(cfg.l1_coefficients)
    for _ in range(cfg.steps):
        gpu_check.finetune_step(stack, optimizer, x, lambdas, cfg, None)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(stack, name), getattr(reference, name), rtol=1e-5, atol=1e-6)


def test_gemma_2b_config_is_transformer_lens_own():
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    theirs = convert_hf_model_config("google/gemma-2b")  # name-based: no hub access
    theirs.pop("tokenizer_name")
    assert gpu_check.GEMMA_2B_TL == theirs
    cfg = gpu_check.gemma2b_config(gpu_check.FULL, "cpu")
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.n_key_value_heads, cfg.d_mlp, cfg.d_vocab) == \
        (2048, 18, 8, 256, 1, 16384, 256000)
    assert cfg.gated_mlp and cfg.normalization_type == "RMS" and cfg.tokenizer_name is None


def test_parse_run_all_output():
    output = "\n".join([
        "[1/3] 00_setup (profile smoke) ...",
        "[IPKernelApp] WARNING | noise",
        "    done in 11.1 s",
        "[2/3] 01_retrieval (profile smoke) ...",
        "    FAILED in 01_retrieval.ipynb, cell 4: RuntimeError: Expected all tensors to be on the same device",
        "    executed copy: runs/smoke/01_retrieval.ipynb",
    ])
    assert gpu_check.parse_run_all(output) == {
        "00_setup": {"status": "ok", "seconds": 11.1},
        "01_retrieval": {"status": "failed", "detail": "cell 4: RuntimeError: Expected all tensors to be on the same device"},
    }
    stopped = gpu_check.parse_run_all("[1/9] 00_setup (profile smoke) ...\n")
    assert stopped == {"00_setup": {"status": "unfinished"}}


def test_nonfinite_in_results(tmp_path):
    (tmp_path / "00_setup.json").write_text('{"ce": 3.2, "curve": [1.0, NaN], "cap": null, "ok": true}')
    (tmp_path / "01_retrieval.json").write_text('{"scores": [[0.5, Infinity]]}')
    found = gpu_check.nonfinite_in_results(tmp_path)
    assert found["n_nonfinite"] == 2
    assert sorted(found["nonfinite_paths"]) == ["00_setup.json.curve[1]", "01_retrieval.json.scores[0][1]"]
    assert found["files"]["00_setup.json"] == {"numbers": 3, "nonfinite": 1, "nulls": 1}


def test_report_json_is_standard_and_atomic(tmp_path):
    report = gpu_check.Report(started="now", budget_s=1.0, device="cpu", tiny=True, argv=[],
                              sections={"x": gpu_check.SectionResult("x", numbers={"a": float("nan")})})
    out = tmp_path / "r.json"
    report.write(out)
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
