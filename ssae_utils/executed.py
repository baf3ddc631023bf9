"""Executed notebooks that diff cleanly: what ``run_all.py`` does to each copy papermill writes.

* Progress bars: a text bar's updates arrive as stream chunks with carriage returns
  (``ssae_utils.progress``), which papermill saves as separate outputs when they come minutes
  apart; consecutive outputs of one stream are joined (as Jupyter shows them) and only each
  line's final state is kept ("100%| 60/60 [...]"); outputs left empty go. A widget bar (a
  library's ``tqdm.auto`` in the kernel) keeps its progress in widget messages that are not
  saved, so all that is left of it is a frozen "0%" text: it is dropped.
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
        parts = line.split("\r")
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        last = parts[-1]
        # blanks written over earlier text: a bar cleared on close (leave=False) left nothing
        lines.append("" if not last.strip() else last)
    return "\n".join(lines)


_BAR = re.compile(r"\d+%\|")


def _is_widget_bar(output: dict[str, Any]) -> bool:
    data = output.get("data", {})
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return "application/vnd.jupyter.widget-view+json" in data and bool(_BAR.search(text))


def tidy_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell's outputs: consecutive outputs of the same stream joined, progress lines at
    their final state, empty streams and widget progress bars dropped."""
    joined: list[dict[str, Any]] = []
    for output in outputs:
        if output.get("output_type") == "display_data" and _is_widget_bar(output):
            continue
        if output.get("output_type") == "stream":
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            last = joined[-1] if joined else None
            if last is not None and last.get("output_type") == "stream" and last.get("name") == output.get("name"):
                last["text"] += text
                continue
            output["text"] = text
        joined.append(output)
    out = []
    for output in joined:
        if output.get("output_type") == "stream":
            output["text"] = final_state(output["text"])
            if not output["text"].strip():
                continue
        out.append(output)
    return out


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
        if "outputs" in cell:
            cell["outputs"] = tidy_outputs(cell["outputs"])
    return notebook


def tidy_file(path: Path) -> None:
    """Rewrite an executed notebook in place, tidied (atomically)."""
    from ssae_utils.io import atomic_path

    nb = nbformat.read(str(path), as_version=4)
    tidy(nb)
    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))
