"""Progress bars for the package: ``tqdm.auto`` in an interactive session; plain text bars
when ``SSAE_PROGRESS=text`` (``run_all.py`` sets it for the kernels it starts), so that an
executed notebook keeps a bar's final line instead of a widget frozen at 0% and a log
(nohup, a batch scheduler) gets progress lines with their ETA (at most one per
``TQDM_MININTERVAL`` seconds, which run_all sets when its output is not a terminal)."""

from __future__ import annotations

import os

if os.environ.get("SSAE_PROGRESS") == "text":
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
