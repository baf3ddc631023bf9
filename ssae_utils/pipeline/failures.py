"""A stage whose work items mostly fail exits non-zero instead of reporting on the few left.

Stages that tolerate a failing item (an autointerp feature Claude could not explain, a TracIn
candidate with no scorable token) record the failure per item and go on; but a result built
from a minority of its items would read as a normal result. ``check_item_failures`` turns
"more than half failed" into an exception that says how many, the commonest cause, and the knob
to turn; the stage then writes nothing, so the previous results stay.
"""

from __future__ import annotations

__all__ = ["StageItemsFailed", "check_item_failures", "MAX_FAILED_SHARE"]

MAX_FAILED_SHARE = 0.5


class StageItemsFailed(RuntimeError):
    """More than ``MAX_FAILED_SHARE`` of a stage's work items failed."""


def check_item_failures(what: str, failed: int, total: int, cause: str, fix: str,
                        max_share: float = MAX_FAILED_SHARE, error: type[StageItemsFailed] = StageItemsFailed) -> None:
    """Raise ``error`` when more than ``max_share`` of ``total`` items (``what``) failed."""
    if total and failed > max_share * total:
        raise error(f"{failed} of {total} {what} failed ({cause}); nothing was written and the previous results "
                    f"were kept. {fix}")
