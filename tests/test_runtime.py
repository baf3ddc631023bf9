"""The allocator settings run_all.py hands to notebook kernels."""

from __future__ import annotations

import subprocess
import sys

from ssae_utils.runtime import ALLOCATOR_ENV, apply_allocator_env


def test_allocator_env_is_added_without_overriding_the_user():
    env = {"MALLOC_TRIM_THRESHOLD_": "123"}
    applied = apply_allocator_env(env)
    assert env["MALLOC_TRIM_THRESHOLD_"] == "123" and applied["MALLOC_TRIM_THRESHOLD_"] == "123"
    assert env["MALLOC_MMAP_THRESHOLD_"] == ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"]


def test_allocator_env_can_be_switched_off():
    env = {"SSAE_DEFAULT_MALLOC": "1"}
    assert apply_allocator_env(env) == {} and set(env) == {"SSAE_DEFAULT_MALLOC"}


def test_run_all_passes_the_allocator_env_to_child_processes(monkeypatch):
    # papermill's kernel inherits os.environ; a child process stands in for the kernel
    for key in ALLOCATOR_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("SSAE_DEFAULT_MALLOC", raising=False)
    apply_allocator_env()
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"]
