"""Names of TERM arms (torch-free: the figures and the scorecard read them too).

An arm is one way of tilting (``sae.term.TiltConfig``): its t, what it normalizes the loss
by and what an example is. The paper's raw tilt over tokens is named by its t alone
("Dense+TERM t=500"); the others carry a suffix ("... t=1 (loss_scale)").
"""

from __future__ import annotations

from typing import Any


def arm_suffix(normalize: str = "raw", over: str = "tokens") -> str:
    """How a TERM arm's name differs from the paper's raw tilt over tokens: "" for that one,
    else " (loss_scale)", " (sequences)" or " (loss_scale, sequences)"."""
    parts = [value for value, default in ((normalize, "raw"), (over, "tokens")) if value != default]
    return f" ({', '.join(parts)})" if parts else ""


def row_arm_suffix(row: Any) -> str:
    """``arm_suffix`` of a stage-03 row (a dict or a ``FinetuneRow``; the fields are only
    written for arms that are not raw-over-tokens)."""
    get = row.get if isinstance(row, dict) else (lambda k, d: getattr(row, k, d))
    normalize, over = get("tilt_normalize", "raw"), get("tilt_over", "tokens")
    return arm_suffix(normalize if isinstance(normalize, str) else "raw", over if isinstance(over, str) else "tokens")
