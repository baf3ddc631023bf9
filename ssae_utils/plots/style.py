"""One name and one colour per model across every figure, in the paper's language.

Results files name models in code (``seed_only``, ``dense+TERM t=500`` in 04_pareto.json;
``General SSAE``, ``Dense+TERM t=1 (loss_scale)`` in 05/06); the figures show the paper's
names (its "OWT baseline" is our general-data SSAE, its "Validation" baseline our seed-only
SSAE). Every ERM strategy has a fixed colour; TERM arms take the TERM palette in the order
the sweep lists them (the judged arm first, as every results file does), each with its own
dash pattern so near-identical arms stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

TERM_MARK = "+TERM t="

# code key -> the paper's name (ours in brackets where the embedded data stands in for it)
STRATEGY_NAMES = {"general": "General (OWT baseline)", "seed_only": "Seed only (Validation)", "bm25": "BM25",
                  "dense": "Dense", "bm25_tracin": "BM25-TracIn", "dense_tracin": "Dense-TracIn"}
# the display names ssae_utils.analysis.matched writes into model labels ("Dense SSAE")
_LABEL_STRATEGY = {"General": "general", "Seed-only": "seed_only", "BM25": "bm25", "Dense": "dense",
                   "BM25-TracIn": "bm25_tracin", "Dense-TracIn": "dense_tracin"}
GSAE_COLOR = "black"
STRATEGY_COLORS = {"general": "#1f77b4", "seed_only": "#7f7f7f", "bm25": "#ff7f0e", "dense": "#2ca02c",
                   "bm25_tracin": "#d62728", "dense_tracin": "#9467bd"}
TERM_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173")
TERM_DASHES: tuple[Any, ...] = ((0, (5, 2)), (0, (1, 1.5)), (0, (5, 2, 1, 2)), (0, (3, 1, 1, 1, 1, 1)),
                                (0, (8, 2)), (0, (2, 2)), (0, (6, 1, 2, 1)), (0, (1, 3)))
ARM_WORDS = {"loss_scale": "loss scale", "sequences": "over sequences", "per_dim": "per dim."}


@dataclass(frozen=True)
class ModelName:
    """What a results file's model or curve name means: the GSAE, an ERM strategy, or a TERM arm."""

    strategy: str | None      # None: the GSAE
    tilt: str | None = None   # the t as written in the name (TERM arms only)
    arm: str = ""             # how the arm tilts, e.g. "loss_scale" (the paper's raw tilt: "")

    @property
    def is_term(self) -> bool:
        return self.tilt is not None


def parse(name: str) -> ModelName:
    """"GSAE", "General SSAE", "seed_only", "dense+TERM t=1e+09", "Dense+TERM t=1 (loss_scale)" ..."""
    if name == "GSAE":
        return ModelName(None)
    if TERM_MARK in name:
        base, rest = name.split(TERM_MARK, 1)
        tilt, _, arm = rest.partition(" (")
        return ModelName(_strategy(base), tilt.strip(), arm.rstrip(")").strip())
    return ModelName(_strategy(name))


def _strategy(text: str) -> str:
    text = text.strip().removesuffix(" SSAE")
    if text in STRATEGY_NAMES:
        return text
    if text in _LABEL_STRATEGY:
        return _LABEL_STRATEGY[text]
    raise ValueError(f"unknown model or curve name {text!r}: not a strategy of {sorted(STRATEGY_NAMES)}")


def _tilt_text(tilt: str) -> str:
    try:
        t = float(tilt)
    except ValueError:
        return tilt
    if t >= 1e6:
        return f"1e{len(str(int(t))) - 1}" if float(f"1e{len(str(int(t))) - 1}") == t else f"{t:.3g}"
    return f"{t:.3g}"


def display_name(name: str) -> str:
    """The paper's name for a results file's model or curve name."""
    m = parse(name)
    if m.strategy is None:
        return "GSAE"
    base = STRATEGY_NAMES[m.strategy].split(" (")[0] if m.is_term else STRATEGY_NAMES[m.strategy]
    if not m.is_term:
        return base
    arm = f", {ARM_WORDS.get(m.arm, m.arm)}" if m.arm else ""
    return f"{base} + TERM t = {_tilt_text(m.tilt or '')}{arm}"


def styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """matplotlib keyword arguments (color, ls) per name: the GSAE black and dashed, each ERM
    strategy its fixed colour and a solid line, TERM arms the TERM palette in ``names``' order."""
    out: dict[str, dict[str, Any]] = {}
    k = 0
    for name in names:
        m = parse(name)
        if m.strategy is None:
            out[name] = {"color": GSAE_COLOR, "ls": "--"}
        elif not m.is_term:
            out[name] = {"color": STRATEGY_COLORS[m.strategy], "ls": "-"}
        else:
            out[name] = {"color": TERM_COLORS[k % len(TERM_COLORS)], "ls": TERM_DASHES[k % len(TERM_DASHES)]}
            k += 1
    return out
