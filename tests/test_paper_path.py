"""The paper profile's own code paths, notebooks 00-08, on CPU and offline, at smoke size
(tests/paper_path.py says what is kept and what is scaled down)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paper_path import paper_path_overrides

REPO = Path(__file__).resolve().parents[1]


def test_the_overrides_keep_the_paper_code_paths_and_shrink_only_sizes(tmp_path):
    from ssae_utils.config import load_profile

    cfg = load_profile("paper", paper_path_overrides(tmp_path))
    assert cfg.data.general_sources == ("openwebtext",) and cfg.data.bios_source == "bias_in_bios" and cfg.data.storage == "arrow"
    assert cfg.gsae.source == "pretrained" and cfg.gsae.pretrained_path
    assert (cfg.retrieval.bm25_backend, cfg.retrieval.embedding_dtype, cfg.retrieval.tracin_stream) == ("streaming", "float16", True)
    assert cfg.activations.dtype == "float16"
    assert cfg.finetune.val_patched_ce and not cfg.finetune.keep_unpicked_checkpoints and cfg.finetune.sample_read_tokens
    assert all(d.pool_share == 0.0 for d in cfg.domains.values())           # the paper plants nothing in the pool
    assert cfg.domains["physics"].token_budget > cfg.domains["physics"].steps * cfg.finetune.batch_size   # sampling runs
    cfg_json = json.loads((Path(cfg.gsae.pretrained_path) / "cfg.json").read_text())
    assert cfg_json["apply_b_dec_to_input"] is False and cfg_json["normalize_activations"] == "none"


@pytest.mark.slow
def test_notebooks_00_to_08_run_the_paper_code_paths(tmp_path):
    overrides = paper_path_overrides(tmp_path)
    args = [x for k, v in overrides.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    env = {**{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
           **{f"SSAE_{k.upper()}": str(tmp_path / k) for k in ("cache", "results", "figures", "runs")}}
    def run(*only: str) -> None:
        proc = subprocess.run([sys.executable, str(REPO / "run_all.py"), "--profile", "paper", *args, *only], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]

    def cached_documents() -> set[str]:
        return {doc["hash"] for m in (tmp_path / "cache" / "activations").rglob("*.json")
                for doc in json.loads(m.read_text()).get("docs", [])}

    run("--only", "00")
    after_00 = cached_documents()        # the GSAE's held-out and calibration tokens
    run("--only", "01", "02")
    after_02 = cached_documents()
    run()                                # 03-08 (00-02 are up to date)
    results = tmp_path / "results" / "paper"
    read = lambda name: json.loads((results / name).read_text())  # noqa: E731
    setup = read("00_setup.json")
    training = setup["gsae"]["training"]
    assert "lambda_l0_calibration" in training and training.get("norm_scaling_factor")
    assert read("02_tracin.json")["domains"]["physics"]["scoring"]["streamed"]
    rows = read("03_finetune.json")["rows"]
    assert any(r.get("sampled_docs") for r in rows) and all("val_ppl" in r for r in rows)
    grids = [g for g in (tmp_path / "cache" / "saes" / "ssae").iterdir() if list(g.glob("picked-*.json"))]
    assert len(grids) >= 12 and all(len([p for p in g.iterdir() if p.is_dir()]) == 3 for g in grids)   # one per lambda
    # streamed TracIn: stage 02 cached its seed documents only, none of its candidates
    seeds = sum(d["seed"]["docs"] for d in read("02_tracin.json")["domains"].values())
    assert len(after_00) > 0 and len(after_02 - after_00) == seeds
    for name in ("04_pareto.json", "05_tail_tokens.json", "06_autointerp.json", "07_bias_in_bios.json", "08_scorecard.json"):
        assert (results / name).exists(), name
