"""Executed notebooks that diff cleanly: what ``run_all.py`` does to each copy papermill writes.

* Progress bars: a text bar's updates arrive as one stream with carriage returns
  (``ssae_utils.progress``); only each line's final state is kept ("100%| 60/60 [...]").
* Volatile metadata: papermill's start/end times and durations, the kernel's execution
  timestamps, and the absolute input/output paths are dropped, so a rerun that computes the
  same numbers writes the same file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

VOLATILE_PAPERMILL = ("start_time", "end_time", "duration")
_ANSI_CURSOR = re.compile(r"\x1b\[A")   # tqdm's "move up" between nested bars


def final_state(text: str) -> str:
    """Each line as it last looked: the part after its last carriage return."""
    text = _ANSI_CURSOR.sub("", text)
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def tidy(notebook: dict[str, Any]) -> dict[str, Any]:
    """``notebook`` (nbformat) with progress bars at their final state and volatile metadata gone."""
    meta = notebook.get("metadata", {}).get("papermill")
    if isinstance(meta, dict):
        for key in VOLATILE_PAPERMILL:
            meta.pop(key, None)
        for key in ("input_path", "output_path"):
            if meta.get(key):
                meta[key] = Path(meta[key]).name
    for cell in notebook.get("cells", []):
        cell_meta = cell.get("metadata", {})
        cell_meta.pop("execution", None)
        if isinstance(cell_meta.get("papermill"), dict):
            for key in VOLATILE_PAPERMILL:
                cell_meta["papermill"].pop(key, None)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                output["text"] = final_state("".join(text) if isinstance(text, list) else text)
    return notebook


def tidy_file(path: Path) -> None:
    """Rewrite an executed notebook in place, tidied (atomically)."""
    from ssae_utils.io import atomic_path

    nb = nbformat.read(str(path), as_version=4)
    tidy(nb)
    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))
