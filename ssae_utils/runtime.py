"""Process settings for the notebook kernels that ``run_all.py`` starts.

glibc returns every freed block above its mmap threshold (at most 32 MB by default) to the
operating system, so each SSAE training step, which allocates [lambdas, batch, d_sae]
temporaries of ~64 MB, maps and zero-fills fresh pages again (millions of page faults,
~12% of stage 03's CPU time in system calls). Keeping large blocks in the heap makes a
training step 1.28x faster on the 2-core machine (``bench/bench_allocator.py``); the price
is that the process keeps its peak memory until it exits. glibc reads these variables only
at process start, so they must be in the kernel's environment, not set from a notebook.
"""

from __future__ import annotations

import os
from typing import MutableMapping

ALLOCATOR_ENV: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(4 * 2**30),   # serve blocks up to 4 GiB from the heap
    "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30),  # and do not hand freed heap back to the OS
}


def apply_allocator_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Add ``ALLOCATOR_ENV`` to ``environ`` (default ``os.environ``, inherited by the
    kernels papermill starts) without overriding values the user set; returns what is in
    effect. ``SSAE_DEFAULT_MALLOC=1`` leaves the allocator at glibc's defaults."""
    environ = os.environ if environ is None else environ
    if environ.get("SSAE_DEFAULT_MALLOC") == "1":
        return {}
    for key, value in ALLOCATOR_ENV.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in ALLOCATOR_ENV}


def apply_dist_env(nproc: int, nnodes: str = "1", rdzv_endpoint: str | None = None, rdzv_id: str | None = None,
                   environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put run_all's ``--nproc/--nnodes/--rdzv-endpoint/--rdzv-id`` into ``environ`` (default
    ``os.environ``) for the kernels, where ``ssae_utils.dist`` reads them; a single process
    removes them, so a kernel never inherits an earlier setting by accident."""
    from ssae_utils.dist import ENV_NNODES, ENV_NPROC, ENV_RDZV, ENV_RDZV_ID

    environ = os.environ if environ is None else environ
    values = {ENV_NPROC: str(nproc), ENV_NNODES: str(nnodes), ENV_RDZV: rdzv_endpoint or "", ENV_RDZV_ID: rdzv_id or ""}
    if nproc <= 1 and str(nnodes) == "1":
        for key in values:
            environ.pop(key, None)
        return {}
    environ.update(values)
    return values
