"""A run killed mid-stage resumes to the same results as a clean run, and two runs sharing one
cache both finish with equal results (real ``run_all.py`` subprocesses, smoke profile)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compare import results_differences

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(cache: Path, out: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "SSAE_CACHE": str(cache), "SSAE_RESULTS": str(out / "results"),
            "SSAE_FIGURES": str(out / "figures"), "SSAE_RUNS": str(out / "runs")}


def _start(cache: Path, out: Path, *only: str) -> subprocess.Popen:
    # a session of its own: SIGKILL to its group reaches papermill's kernel too
    return subprocess.Popen([sys.executable, str(REPO / "run_all.py"), "--profile", "smoke", "--only", *only],
                            cwd=REPO, env=_env(cache, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _run(cache: Path, out: Path, *only: str, timeout: float = 170) -> None:
    proc = _start(cache, out, *only)
    log, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log[-3000:]


def _kill_when(proc: subprocess.Popen, appeared, timeout: float = 150) -> None:
    """SIGKILL the run's process group as soon as ``appeared()`` is true (it must be, in time)."""
    deadline = time.monotonic() + timeout
    while not appeared():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before the kill point:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run of notebook 00 on an empty cache: the reference results."""
    root = tmp_path_factory.mktemp("clean")
    _run(root / "cache", root, "00")
    return root


def test_a_run_killed_while_caching_activations_resumes_to_the_clean_results(clean, tmp_path):
    cache = tmp_path / "cache"
    proc = _start(cache, tmp_path / "killed", "00")
    _kill_when(proc, lambda: any((cache / "activations").glob("*/*.acts.npy")))
    assert not (tmp_path / "killed" / "results" / "smoke" / "00_setup.json").exists()
    _run(cache, tmp_path / "killed", "00")
    assert results_differences(tmp_path / "killed" / "results" / "smoke" / "00_setup.json",
                               clean / "results" / "smoke" / "00_setup.json") == []


def test_two_concurrent_runs_on_one_cache_both_succeed_with_equal_results(clean, tmp_path):
    cache = tmp_path / "cache"
    procs = [_start(cache, tmp_path / name, "00") for name in ("a", "b")]
    for proc in procs:
        log, _ = proc.communicate(timeout=170)
        assert proc.returncode == 0, log[-3000:]
    a, b = (tmp_path / name / "results" / "smoke" / "00_setup.json" for name in ("a", "b"))
    assert results_differences(a, b) == []
    assert results_differences(a, clean / "results" / "smoke" / "00_setup.json") == []


@pytest.fixture(scope="module")
def upstream_of_03(tmp_path_factory):
    """Notebooks 00-02 run once (cache + results), copied by each test that needs them."""
    root = tmp_path_factory.mktemp("upstream")
    _run(root / "cache", root, "00", "01", "02", timeout=400)
    return root


def _copy_of(upstream: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(upstream / "cache", to / "cache", symlinks=True)
    shutil.copytree(upstream / "results", to / "results")
    return to


def test_stage_03_killed_after_its_first_ssae_resumes_to_the_clean_results(upstream_of_03, tmp_path):
    clean = _copy_of(upstream_of_03, tmp_path / "clean")
    _run(clean / "cache", clean, "03", timeout=300)
    killed = _copy_of(upstream_of_03, tmp_path / "killed")
    proc = _start(killed / "cache", killed, "03")
    # an SSAE folder is complete once its checksums (written last) are there
    _kill_when(proc, lambda: any((killed / "cache" / "saes" / "ssae").glob("*/*/checksums.json")), timeout=250)
    assert not (killed / "results" / "smoke" / "03_finetune.json").exists()
    _run(killed / "cache", killed, "03", timeout=300)
    assert results_differences(killed / "results" / "smoke" / "03_finetune.json",
                               clean / "results" / "smoke" / "03_finetune.json") == []
