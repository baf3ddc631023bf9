"""run_all.py: argument errors, notebook selection, and the smoke profile end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import run_all
from ssae_utils.paths import REPO_ROOT
from ssae_utils.domains import Domain
from ssae_utils.sae.config import SSAESweepConfig


def test_selection_by_only_and_from():
    nbs = [Path(f"{i:02d}_x.ipynb") for i in range(4)]
    assert [p.name for p in run_all.select(nbs, ["1", "03"], None)] == ["01_x.ipynb", "03_x.ipynb"]
    assert [p.name for p in run_all.select(nbs, None, "02")] == ["02_x.ipynb", "03_x.ipynb"]
    with pytest.raises(SystemExit, match="no notebook numbered '7'"):
        run_all.select(nbs, ["7"], None)
    for bad in ("003", "x", "1a"):                 # '003' used to run notebook 00
        with pytest.raises(SystemExit, match=f"no notebook numbered '{bad}'"):
            run_all.select(nbs, [bad], None)
        with pytest.raises(SystemExit, match="--from"):
            run_all.select(nbs, None, bad)


@pytest.mark.parametrize("override,message", [("foo", "must look like section.field=value"),
                                              ("gsae.d_sae=abc", "gsae.d_sae expects an integer, not 'abc'"),
                                              ("gsae.lr=NaN", "gsae.lr must be a finite number"),
                                              ("finetune.tilt_normalize=bogus", "finetune.tilt_normalize must be one of"),
                                              ("finetune.lambdas=[1,1]", "repeats a value"),
                                              ("finetune.term_tilts=[0]", "t = 0 is ERM"),
                                              ("domains.physics.steps=x", "domains.physics.steps expects an integer")])
def test_bad_overrides_get_one_line_errors_naming_the_knob(override, message, capsys):
    assert run_all.main(["--profile", "smoke", "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def _fingerprints(config, results):
    return {nb.name[:2]: run_all.fingerprint(nb, config, results) for nb in run_all.discover()}


def test_a_later_stage_knob_leaves_earlier_notebooks_up_to_date(tmp_path):
    from ssae_utils.config import load_profile

    base = _fingerprints(load_profile("smoke").to_dict(), tmp_path)
    changed = _fingerprints(load_profile("smoke", {"autointerp.n_features": 3}).to_dict(), tmp_path)
    assert [n for n in base if base[n] != changed[n]] == ["06", "07", "08"]
    gsae = _fingerprints(load_profile("smoke", {"gsae.d_sae": 64}).to_dict(), tmp_path)
    assert all(base[n] != gsae[n] for n in base)


def test_changed_upstream_results_make_later_notebooks_stale(tmp_path):
    from ssae_utils.config import load_profile

    config = load_profile("smoke").to_dict()
    (tmp_path / "03_finetune.json").write_text("{}")
    before = _fingerprints(config, tmp_path)
    (tmp_path / "03_finetune.json").write_text('{"rows": []}')
    after = _fingerprints(config, tmp_path)
    assert [n for n in before if before[n] != after[n]] == ["04", "05", "06", "07", "08"]


def test_run_state_is_kept_per_results_folder(tmp_path):
    from ssae_utils.paths import REPO_ROOT

    default = run_all.state_file("embedded", REPO_ROOT / "results" / "embedded")
    scratch = run_all.state_file("embedded", tmp_path / "embedded")
    assert default.name == "embedded.json" and scratch.name.startswith("embedded-") and scratch != default


def test_a_notebook_without_its_results_is_not_up_to_date(tmp_path):
    nb = Path("05_tail_tokens.ipynb")
    assert run_all.own_results(nb, tmp_path) == []
    (tmp_path / "05_tail_tokens.json").write_text("{}")
    (tmp_path / "06_autointerp.json").write_text("{}")
    assert [p.name for p in run_all.own_results(nb, tmp_path)] == ["05_tail_tokens.json"]


def test_every_config_section_has_a_stage():
    from ssae_utils.config import load_profile

    assert set(load_profile("smoke").to_dict()) == set(run_all.SECTION_STAGE)


def test_bad_profile_and_knob_exit_with_clear_message(capsys):
    assert run_all.main(["--profile", "huge"]) == 2
    assert "Valid profiles: smoke, embedded, paper" in capsys.readouterr().err
    assert run_all.main(["--profile", "smoke", "--set", "gsae.width=3"]) == 2
    assert "Valid knobs" in capsys.readouterr().err


def test_every_notebook_has_a_papermill_parameters_cell():
    for nb_path in run_all.discover():
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, nb_path.name
        assert "profile" in tagged[0].source and "overrides" in tagged[0].source


def _run(args, env):
    return subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook_through_run_all(tmp_path):
    # no API key: notebook 06 must take its offline path here, whatever the caller's shell holds
    env = {**{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}, "SSAE_CACHE": str(tmp_path / "cache"),
           "SSAE_RESULTS": str(tmp_path / "results"), "SSAE_FIGURES": str(tmp_path / "figures"), "SSAE_RUNS": str(tmp_path / "runs"),
           "SSAE_REPORT": str(tmp_path / "report")}
    proc = _run(["--profile", "smoke"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the executed notebooks and their HTML report, checked in headless Chromium where it is installed
    from tests.report_check import check_in_browser, check_links, chromium

    index = tmp_path / "report" / "smoke" / "index.html"
    assert f"report: {index}" in proc.stdout
    pages = check_links(index)        # the index, 9 notebooks and both feature-dashboard indexes
    boards = tmp_path / "figures" / "smoke" / "dashboards"
    assert len(pages) == 1 + 9 + 2 and {boards / "index.html", boards / "bias_in_bios" / "index.html"} <= set(pages)
    assert len(list((boards / "bias_in_bios").glob("GSAE_f*.html"))) >= 1      # the GSAE's gender features
    if chromium():
        check_in_browser(index, tmp_path / "index.png")
    assert "00_setup" in proc.stdout and "ok" in proc.stdout
    # not a terminal: the cells' output is streamed to the log, progress lines included
    assert "    | Executing notebook with kernel" in proc.stdout and "finetuning" in proc.stdout
    executed = (tmp_path / "runs" / "smoke" / "03_finetune.ipynb").read_text()
    assert '"start_time"' not in executed and "\\r" not in executed and "100%|" in executed   # bars at their final state
    results = json.loads((tmp_path / "results" / "smoke" / "00_setup.json").read_text())
    held = results["gsae"]["heldout"]
    assert held["l0"] > 0 and 0 <= held["fvu"] < 1
    assert held["ce_zero_ablation"] > held["ce_clean"]
    for fig in ["00_data_card", "00_gsae_feature_density"]:
        assert (tmp_path / "figures" / "smoke" / f"{fig}.png").exists()
        assert json.loads((tmp_path / "figures" / "smoke" / f"{fig}.meta.json").read_text())["notebook"] == "00_setup"
    retrieval = json.loads((tmp_path / "results" / "smoke" / "01_retrieval.json").read_text())
    for domain in ("physics", "toxicity"):
        quality = retrieval["domains"][domain]["quality"]
        assert set(quality) == {"general", "seed_only", "bm25", "dense"}
        assert quality["bm25"]["budget_met"] and quality["bm25"]["total_tokens"] >= retrieval["domains"][domain]["budget"]
    for fig in ["01_retrieval_quality", "01_source_breakdown", "01_score_distributions", "01_selection_overlap"]:
        assert json.loads((tmp_path / "figures" / "smoke" / f"{fig}.meta.json").read_text())["notebook"] == "01_retrieval"
    tracin = json.loads((tmp_path / "results" / "smoke" / "02_tracin.json").read_text())
    for domain in ("physics", "toxicity"):
        d = tracin["domains"][domain]
        assert set(d["quality"]) == {"general", "seed_only", "bm25", "dense", "bm25_tracin", "dense_tracin"}
        for retriever in ("bm25", "dense"):
            sel = d["selections"][f"{retriever}_tracin"]
            candidates = retrieval["domains"][domain]["prefilter"][retriever]["doc_ids"]
            assert sel["budget_met"] and sel["total_tokens"] >= d["budget"]
            assert set(sel["doc_ids"]) <= set(candidates)            # only candidates are reranked
            assert sel["scores"] == sorted(sel["scores"], reverse=True)
            scored = len(d["candidates"][retriever]["tracin_scores"])
            assert len(candidates) - d["scoring"]["unscorable_docs"] <= scored <= len(candidates)
    for fig in ["02_retrieval_quality", "02_tracin_rerank", "02_score_distributions", "02_source_breakdown", "02_selection_overlap"]:
        assert json.loads((tmp_path / "figures" / "smoke" / f"{fig}.meta.json").read_text())["notebook"] == "02_tracin"
    finetune = json.loads((tmp_path / "results" / "smoke" / "03_finetune.json").read_text())
    sweep = SSAESweepConfig(**finetune["sweep"])
    domains = [Domain.from_dict(d) for d in finetune["domains"].values()]
    assert [d.name for d in domains] == ["physics", "toxicity"]
    expected_rows = sum(len(sweep.lambdas_for(tilt)) * len(sweep.seeds_for(domain, strategy, tilt))
                        for domain in domains for strategy, tilt in sweep.runs(domain))
    assert len(finetune["rows"]) == expected_rows
    assert {r["seed"] for r in finetune["rows"] if r["domain"] == "physics" and r["strategy"] == "dense"} == {0, 1}  # extra seed
    for row in finetune["rows"]:
        assert row["val_l0"] > 0 and row["test_ppl"] > 1 and row["test_ppl_rel_gsae"] > 0
        assert (tmp_path / "cache" / row["ssae_folder"] / "cfg.json").exists()     # saved in SAELens format
        scores = row["val_objective_by_step"]                                       # validation picked the checkpoint
        assert scores[str(row["checkpoint_step"])] == min(scores.values()) and len(scores) == 2
    physics = [r for r in finetune["rows"] if r["domain"] == "physics" and r["strategy"] == "dense" and r["tilt"] == 0 and r["seed"] == 0]
    assert physics[0]["val_l0"] > physics[-1]["val_l0"]                           # larger lambda, sparser
    pareto = json.loads((tmp_path / "results" / "smoke" / "04_pareto.json").read_text())
    assert set(pareto["figures"]) == {"fig1a", "fig1b", "fig4", "fig5a", "fig5b", "fig6"}
    assert "dense+TERM t=500" in pareto["figures"]["fig6"]["curves"]
    for fig in pareto["figures"]:
        assert json.loads((tmp_path / "figures" / "smoke" / f"{fig}.meta.json").read_text())["notebook"] == "04_pareto"
        assert (tmp_path / "figures" / "smoke" / f"{fig}.pdf").exists()
    tail = json.loads((tmp_path / "results" / "smoke" / "05_tail_tokens.json").read_text())
    assert [m["label"] for m in tail["models"]] == ["GSAE", "General SSAE", "Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"]
    assert set(tail["per_model"]) == {m["label"] for m in tail["models"]}
    for fig in ["fig2a", "fig2b", "fig3a", "fig7"]:
        assert json.loads((tmp_path / "figures" / "smoke" / f"{fig}.meta.json").read_text())["notebook"] == "05_tail_tokens"
    autointerp = json.loads((tmp_path / "results" / "smoke" / "06_autointerp.json").read_text())
    assert autointerp["mode"] == "offline" and autointerp["calls"]["calls_made"] == 0   # no key in the tests
    # every TERM arm: the judged one with n_features, the others ("TERM arms") with arm_features
    asked = {m["label"]: (m["requested_features"], m["other_term_arm"]) for m in autointerp["models"]}
    assert asked == {"GSAE": (4, False), "General SSAE": (4, False), "Dense SSAE": (4, False),
                     "Dense+TERM t=500": (4, False), "Dense+TERM t=1e9": (2, True)}
    assert set(autointerp["summary"]) == set(asked)
    assert json.loads((tmp_path / "figures" / "smoke" / "fig3b.meta.json").read_text())["notebook"] == "06_autointerp"
    bios = json.loads((tmp_path / "results" / "smoke" / "07_bias_in_bios.json").read_text())
    assert {"Original", "Oracle", "GSAE SHIFT", "SSAE SHIFT"} <= {row["row"] for row in bios["table"]}
    scorecard = json.loads((tmp_path / "results" / "smoke" / "08_scorecard.json").read_text())
    assert [c["claim"] for c in scorecard["claims"]] == [f"C{i}" for i in range(1, 10)]
    assert all(c["verdict"] in ("reproduced", "contradicted", "inconclusive", "untestable") for c in scorecard["claims"])
    assert all(c["legacy_verdict"] in ("reproduced", "not reproduced", "inconclusive") for c in scorecard["claims"])
    assert all(c["stats"]["outcome"] == c["verdict"] for c in scorecard["claims"])
    executed = tmp_path / "runs" / "smoke" / "00_setup.ipynb"
    assert executed.exists()
    # the source notebook is never overwritten by an executed copy
    assert not any(c.get("outputs") for c in nbformat.read(REPO_ROOT / "notebooks" / "00_setup.ipynb", as_version=4).cells if c.cell_type == "code")

    again = _run(["--profile", "smoke"], env)
    assert again.returncode == 0 and "up to date, skipped" in again.stdout

    # A key but no way to reach Claude (a closed port on loopback): notebook 06 fails in
    # seconds, names the cause, keeps its earlier results, and is not marked up to date.
    before = (tmp_path / "results" / "smoke" / "06_autointerp.json").read_bytes()
    offline_net = {**env, "ANTHROPIC_API_KEY": "not-a-real-key", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    failed = _run(["--profile", "smoke", "--only", "06", "--force"], offline_net)
    assert failed.returncode != 0 and "network unreachable" in failed.stdout + failed.stderr
    assert (tmp_path / "results" / "smoke" / "06_autointerp.json").read_bytes() == before
    rerun = _run(["--profile", "smoke", "--only", "06"], env)
    assert rerun.returncode == 0 and "up to date, skipped" not in rerun.stdout


@pytest.mark.slow
def test_failing_notebook_is_named_with_its_cell(tmp_path):
    env = {**os.environ, "SSAE_CACHE": str(tmp_path / "cache"), "SSAE_RESULTS": str(tmp_path / "results"), "SSAE_FIGURES": str(tmp_path / "figures"), "SSAE_RUNS": str(tmp_path / "runs")}
    # an override that passes config validation but breaks the stage: too few tokens for one batch
    proc = _run(["--profile", "smoke", "--only", "00", "--set", "gsae.pool_tokens=10", "--set", "gsae.batch_size=100000"], env)
    assert proc.returncode == 1
    assert "FAILED in 00_setup.ipynb, cell" in proc.stderr and "ValueError" in proc.stderr


def test_show_config_prints_the_resolved_config_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SSAE_RUNS", str(tmp_path / "runs"))
    assert run_all.main(["--profile", "smoke", "--set", "domains.physics.steps=3", "--set", "domains.toxicity=null",
                         "--show-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "smoke" and list(shown["domains"]) == ["physics"] and shown["domains"]["physics"]["steps"] == 3
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ipynb"))


def test_help_lists_the_environment_variables():
    for name in ("SSAE_CACHE", "SSAE_RESULTS", "SSAE_FIGURES", "SSAE_RUNS", "ANTHROPIC_API_KEY"):
        assert name in run_all.__doc__


def test_a_cuda_profile_without_cuda_stops_before_any_notebook(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SSAE_RUNS", str(tmp_path / "runs"))
    assert run_all.main(["--profile", "smoke", "--set", "model.device=cuda", "--no-plan-check"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--set model.device=cpu" in err
    assert not list((tmp_path / "runs").rglob("*.ipynb"))   # no notebook started


def test_figures_only_redraws_every_committed_figure_without_torch(tmp_path):
    # torch made unimportable: what a reader without the ML stack has
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['run_all.py', '--figures-only']; "
            "runpy.run_path('run_all.py', run_name='__main__')")
    env = {**os.environ, "SSAE_FIGURES": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    committed = {p.name for p in (REPO_ROOT / "figures" / "embedded").glob("*.png")}
    assert committed and {p.name for p in (tmp_path / "embedded").glob("*.png")} == committed
    assert "figure(s) redrawn" in proc.stdout
