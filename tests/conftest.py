"""Shared fixtures: every test is seeded, offline and writes only to temporary folders."""

from __future__ import annotations

import os
import random
import tempfile

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
# run_all writes report/<profile>/ after a complete run: never into the checkout from a test
# (the committed report/embedded is read through REPO_ROOT, not this variable)
os.environ.setdefault("SSAE_REPORT", tempfile.mkdtemp(prefix="ssae-test-report-"))


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point every cache, results and figures folder at a temporary directory."""
    monkeypatch.setenv("SSAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SSAE_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SSAE_FIGURES", str(tmp_path / "figures"))
    return tmp_path
