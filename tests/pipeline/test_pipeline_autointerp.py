"""Stage 06 from hand-made features: Claude over a fake transport (cost, cache, secrets) and offline."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from ssae_utils.autointerp.budget import BudgetExceeded
from ssae_utils.autointerp.client import MissingAPIKey
from ssae_utils.config import load_profile
from ssae_utils.paths import cache_root, results_dir
from ssae_utils.pipeline import autointerp as stage06
from ssae_utils.plots import autointerp as plots06
from tests.autointerp.fakes import FakeClaude, make_feature

SENTINEL = "fake-key-for-tests-SENTINEL-6f2b9d0c41e7"


def _collected(n=3):
    labels = ["GSAE", "Dense SSAE"]
    features = {label: [make_feature(label, i, seed=k) for i in range(n)] for k, label in enumerate(labels)}
    models = [{"label": label, "val_l0": 100.0 + k, "l1_coefficient": None if k == 0 else 1.0, "scorable_features": 50}
              for k, label in enumerate(labels)]
    return stage06.Collected(features, models, {"split": "physics_test", "documents": 3, "tokens": 100, "windows": 40,
                                                "window_tokens": 6, "outlier_tokens_ignored": 0})


def _cfg(**overrides):
    knobs = {"autointerp.claude_model": "claude-sonnet-5-5", "autointerp.table_features": 2, **overrides}
    return load_profile("smoke", knobs)


def _grep(root, text):
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_claude_run_is_cached_and_never_leaks_the_key(tmp_cache, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx2's debug logs included
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    cfg = _cfg()
    fake = FakeClaude()
    results = stage06.interpret(cfg, _collected(), http_client=fake.http_client(), sleep=lambda s: None).to_dict()
    assert results["mode"] == "claude" and results["title_label"] == "Claude claude-sonnet-5-5"
    assert results["calls"]["calls_made"] == 12 and results["calls"]["cache_hits"] == 0
    assert len(fake.requests) == 13 and fake.bodies[0]["max_tokens"] == 1   # the probe, then the 12 calls
    assert results["calls"]["plan"]["calls"] == 12 and results["calls"]["plan"]["usd"] <= cfg.autointerp.budget_usd
    assert results["summary"]["GSAE"]["mean"] == 1.0 and results["summary"]["Dense SSAE"]["n"] == 3
    assert [row["feature"] for row in results["table"]["GSAE"]] == [0, 1]
    rows = list(csv.DictReader(open(results_dir("smoke") / stage06.EXPLANATIONS_FILE)))
    assert len(rows) == 6 and rows[0]["explanation"] == "the word 'quark'" and rows[0]["mode"] == "claude"
    png = plots06.plot_fig3b(results_dir("smoke") / stage06.RESULTS_FILE)
    assert png.exists() and json.loads(png.with_suffix(".meta.json").read_text())["notebook"] == "06_autointerp"

    # a rerun with a warm cache makes zero calls
    again_fake = FakeClaude()
    again = stage06.interpret(cfg, _collected(), http_client=again_fake.http_client()).to_dict()
    assert again_fake.requests == [] and again["calls"]["calls_made"] == 0 and again["calls"]["cache_hits"] == 12
    assert again["calls"]["plan"]["calls"] == 0 and again["features"] == results["features"]

    leaks = _grep(tmp_cache, SENTINEL)  # results, figures and the response cache all live here
    assert not leaks, leaks
    assert len(list((cache_root() / "autointerp" / "responses").rglob("*.json"))) == 12
    out = capsys.readouterr()
    assert SENTINEL not in out.out + out.err
    assert SENTINEL not in caplog.text and all(SENTINEL not in str(r.args) for r in caplog.records)


def test_budget_is_checked_before_the_first_call(tmp_cache, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    fake = FakeClaude()
    with pytest.raises(BudgetExceeded, match="budget_usd"):
        stage06.interpret(_cfg(**{"autointerp.budget_usd": 0.01}), _collected(), http_client=fake.http_client())
    with pytest.raises(BudgetExceeded, match="max_calls"):
        stage06.interpret(_cfg(**{"autointerp.max_calls": 11}), _collected(), http_client=fake.http_client())
    assert fake.requests == []


def test_offline_without_a_key_never_builds_the_client_and_says_so(tmp_cache, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("offline mode built the Claude client")

    monkeypatch.setattr(stage06, "ClaudeClient", forbidden)
    results = stage06.interpret(_cfg(), _collected()).to_dict()
    assert results["mode"] == "offline" and results["title_label"] == "offline explainer"
    assert "offline explainer" in results["explainer"] and results["calls"]["calls_made"] == 0
    assert results["features"]["GSAE"][0]["explanation"].startswith("offline explainer")
    assert results["claude_estimate"]["calls"] == 12 and results["claude_estimate"]["usd"] > 0
    titles = []
    monkeypatch.setattr(plots06, "save_figure", lambda fig, *a: titles.append(fig._suptitle.get_text()) or a)
    plots06.plot_fig3b(results_dir("smoke") / stage06.RESULTS_FILE)
    assert "offline explainer" in titles[0]
    # a key in the environment does not matter when offline is asked for
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    assert stage06.interpret(_cfg(**{"autointerp.mode": "offline"}), _collected()).mode == "offline"


def test_mode_claude_without_key_fails_early(tmp_cache, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey):
        stage06.run_autointerp(_cfg(**{"autointerp.mode": "claude"}))


def test_target_l0_comes_from_our_knob_then_the_tail_section():
    assert stage06.resolve_target_l0(_cfg(**{"autointerp.target_l0": 77})) == (77.0, "autointerp.target_l0")
    assert stage06.resolve_target_l0(_cfg(**{"tail.target_l0": 55}))[0] == 55.0


@pytest.mark.slow
def test_smoke_notebook_with_a_key_in_the_environment_leaks_it_nowhere(tmp_path):
    """Notebooks 00-03 and 06 in the smoke profile, the key set but offline asked for (no
    network in tests): the executed notebooks, results, figures and caches never hold it."""
    import os
    import subprocess
    import sys

    from ssae_utils.paths import REPO_ROOT

    dirs = {name: tmp_path / name.lower() for name in ("CACHE", "RESULTS", "FIGURES", "RUNS")}
    env = {**os.environ, "ANTHROPIC_API_KEY": SENTINEL, **{f"SSAE_{k}": str(v) for k, v in dirs.items()}}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "00", "01", "02", "03", "06",
                           "--set", "autointerp.mode=offline"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert SENTINEL not in proc.stdout + proc.stderr
    results = json.loads((dirs["RESULTS"] / "smoke" / stage06.RESULTS_FILE).read_text())
    assert results["mode"] == "offline" and results["summary"]
    assert (dirs["FIGURES"] / "smoke" / "fig3b.png").exists() and (dirs["RUNS"] / "smoke" / "06_autointerp.ipynb").exists()
    assert not _grep(tmp_path, SENTINEL)


def _results_bytes():
    return (results_dir("smoke") / stage06.RESULTS_FILE).read_bytes(), (results_dir("smoke") / stage06.EXPLANATIONS_FILE).read_bytes()


@pytest.mark.parametrize("failure,cause", [("connect", "network unreachable"), (401, "authentication: the API key was refused"),
                                           (404, "unknown model")])
def test_claude_unreachable_or_refused_stops_in_one_probe_and_keeps_earlier_results(tmp_cache, monkeypatch, failure, cause):
    import httpx2

    from ssae_utils.autointerp.client import ClaudeUnavailable
    from tests.autointerp.fakes import error

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    stage06.interpret(_cfg(), _collected())                      # good (offline) results on disk
    before = _results_bytes()

    def script(n, body):
        if failure == "connect":
            raise httpx2.ConnectError("no route to host")
        return error(failure, {401: "authentication_error", 404: "not_found_error"}[failure])

    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    fake = FakeClaude(script)
    with pytest.raises(ClaudeUnavailable, match=cause) as info:
        stage06.interpret(_cfg(), _collected(), http_client=fake.http_client(), sleep=lambda s: None)
    assert "autointerp.mode=offline" in str(info.value) and SENTINEL not in str(info.value)
    assert len(fake.requests) <= 2 and all(b.get("max_tokens") == 1 for b in fake.bodies)   # only the probe went out
    assert _results_bytes() == before


def test_a_run_whose_features_mostly_fail_fails_and_writes_nothing(tmp_cache, monkeypatch):
    import httpx2

    from tests.autointerp.fakes import is_probe, message

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    stage06.interpret(_cfg(), _collected())
    before = _results_bytes()
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    fake = FakeClaude(lambda n, body: None if is_probe(body) else httpx2.Response(200, json=message("no idea")))
    with pytest.raises(stage06.AutointerpFailed, match=r"6 of 6 features failed .*previous results were kept"):
        stage06.interpret(_cfg(), _collected(), http_client=fake.http_client(), sleep=lambda s: None)
    assert _results_bytes() == before
    stage06.check_failures([])                                    # nothing to judge: no error


@pytest.mark.parametrize("drop", ["connect", "timeout"])
def test_a_network_that_drops_after_the_probe_fails_the_stage_and_keeps_earlier_results(tmp_cache, monkeypatch, drop):
    """The probe passes, then every feature's call fails on the network (after its retries):
    the stage stops with the cause instead of writing a table of failures."""
    import httpx2

    from tests.autointerp.fakes import is_probe

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    stage06.interpret(_cfg(), _collected())
    before = _results_bytes()
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)

    def script(n, body):
        if is_probe(body):
            return None
        raise httpx2.ConnectError("network is down") if drop == "connect" else httpx2.ReadTimeout("timed out")

    fake = FakeClaude(script)
    with pytest.raises(stage06.AutointerpFailed, match=r"6 of 6 features failed .*still failing after 1 retries.*"
                                                       r"previous results were kept"):
        stage06.interpret(_cfg(**{"autointerp.max_retries": 1}), _collected(), http_client=fake.http_client(),
                          sleep=lambda s: None)
    assert _results_bytes() == before
