"""From a ranking to a training selection of a fixed LM-token budget, and the two baselines.

Budget rule (``select_to_budget``): whole documents are taken in rank order until the running
total of LM tokens *reaches* the budget. The document that crosses the budget is kept whole
(nothing is ever truncated), so ``budget <= total_tokens < budget + tokens(last document)``
and ``overshoot = total_tokens - budget`` is recorded. If the ranking holds fewer tokens than
the budget, ``ValueError`` is raised by default; with ``allow_short=True`` everything is
taken, a warning is logged and the Selection records ``budget_met=False``.

Ties in score are broken by pool index (ascending), so a selection is deterministic.
Token counts come from the caller (the LM tokenizer), as a ``{doc_id: n}`` mapping or an
array aligned with the pool.

Baselines (the paper's "OWT baseline" and "Validation"):

- ``general_baseline``: a seeded uniformly random order of the whole pool, cut with the same
  budget rule: the same token budget drawn from the general corpus without any retrieval.
- ``seed_only_baseline``: the seed documents alone, trained on for ``passes`` passes; no
  pool document. ``total_tokens`` is one pass; ``training_tokens`` is total x passes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ssae_utils.data.documents import Document
from ssae_utils.retrieval.tokenize import check_text

log = logging.getLogger(__name__)

__all__ = ["Selection", "rank_scores", "select_to_budget", "general_baseline",
           "seed_only_baseline", "prefilter", "token_count_array"]


@dataclass
class Selection:
    strategy: str                      # "bm25", "dense", "bm25_tracin", "general", "seed_only", ...
    domain: str                        # the Domain.name it was selected for
    doc_ids: list[str]                 # in selection (rank) order, each once
    token_counts: list[int]            # LM tokens of each selected document
    total_tokens: int                  # sum(token_counts): one pass
    budget: int | None                 # LM-token budget (None for seed_only)
    scores: list[float] | None = None  # retrieval score of each selected doc (None: baselines)
    passes: int = 1                    # passes over the selection when training (seed_only > 1)
    budget_met: bool = True
    overshoot: int = 0                 # total_tokens - budget when the budget was met
    breakdown: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)   # retriever, query mode, seed, ...

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.token_counts):
            raise ValueError("Selection.doc_ids and token_counts differ in length")
        if self.scores is not None and len(self.scores) != len(self.doc_ids):
            raise ValueError("Selection.scores and doc_ids differ in length")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise ValueError("Selection.doc_ids holds duplicates (use passes for repetition)")
        if sum(self.token_counts) != self.total_tokens:
            raise ValueError("Selection.total_tokens != sum(token_counts)")
        if self.passes < 1:
            raise ValueError("Selection.passes must be >= 1")

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    @property
    def training_tokens(self) -> int:
        return self.total_tokens * self.passes

    def training_doc_ids(self) -> list[str]:
        """The document ids as trained on: the selection repeated ``passes`` times."""
        return list(self.doc_ids) * self.passes

    def summary(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "domain": self.domain, "n_docs": self.n_docs,
                "total_tokens": self.total_tokens, "passes": self.passes,
                "training_tokens": self.training_tokens, "budget": self.budget,
                "budget_met": self.budget_met, "overshoot": self.overshoot}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Selection":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Selection field(s) {sorted(unknown)}")
        return cls(**dict(data))


# --- helpers -------------------------------------------------------------------------------

def rank_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every index ranked by score descending, ties by index ascending: (indices, scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-d, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order.astype(np.int64), scores[order]


def token_count_array(docs: Sequence[Document], token_counts: Mapping[str, int] | Sequence[int]) -> np.ndarray:
    """LM-token counts aligned with ``docs`` (int64), validated."""
    if isinstance(token_counts, Mapping):
        missing = [d.doc_id for d in docs if d.doc_id not in token_counts]
        if missing:
            raise KeyError(f"token_counts has no entry for {len(missing)} document(s), e.g. "
                           f"{missing[:3]}; count every pool document with the LM tokenizer")
        counts = np.array([token_counts[d.doc_id] for d in docs])
    else:
        counts = np.asarray(token_counts)
        if counts.shape != (len(docs),):
            raise ValueError(f"token_counts has shape {counts.shape}, expected ({len(docs)},) "
                             f"(one count per document)")
    if counts.size and (not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0):
        raise ValueError("token_counts must be non-negative integers")
    return counts.astype(np.int64)


def _check_docs(docs: Sequence[Document], what: str) -> None:
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise TypeError(f"{what}[{i}] is a {type(d).__name__}, not a Document")
        check_text(d.text, f"{what}[{i}].text ({d.doc_id})")


def _breakdown(docs: Sequence[Document], counts: Sequence[int]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for key, get in (("source", lambda d: d.source), ("topic", lambda d: str(d.topic)),
                     ("known_domain", lambda d: str(d.meta.get("known_domain")))):
        n_docs, n_tok = Counter(), Counter()
        for d, c in zip(docs, counts):
            n_docs[get(d)] += 1
            n_tok[get(d)] += int(c)
        out[key] = {k: {"docs": n_docs[k], "tokens": n_tok[k]} for k in sorted(n_docs)}
    return out


def _cut(order: np.ndarray, counts: np.ndarray, budget: int, allow_short: bool,
         what: str) -> tuple[np.ndarray, bool]:
    """The prefix of ``order`` whose tokens first reach ``budget``."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1 LM token, got {budget}")
    cum = np.cumsum(counts[order])
    available = int(cum[-1]) if len(cum) else 0
    if available < budget:
        if not allow_short:
            raise ValueError(f"{what}: the budget of {budget:,} LM tokens exceeds the "
                             f"{available:,} tokens of the {len(order):,} ranked documents; "
                             f"lower the budget or pass allow_short=True to take everything")
        log.warning("%s: budget %d LM tokens > %d available in %d documents: taking all of "
                    "them (budget_met=False)", what, budget, available, len(order))
        return order, False
    n = int(np.searchsorted(cum, budget, side="left")) + 1   # first prefix with cum >= budget
    return order[:n], True


# --- strategies ----------------------------------------------------------------------------

def select_to_budget(pool: Sequence[Document], ranked_indices: np.ndarray,
                     ranked_scores: np.ndarray | None,
                     token_counts: Mapping[str, int] | Sequence[int], budget: int, *,
                     strategy: str, domain: str, allow_short: bool = False,
                     meta: Mapping[str, Any] | None = None) -> Selection:
    """Take pool documents in ``ranked_indices`` order until ``budget`` LM tokens are reached.

    ``ranked_indices`` index ``pool`` (best first; a top-k or the whole pool, e.g. from
    ``rank_scores`` or ``dense.dense_topk``); ``ranked_scores`` are their scores.
    """
    _check_docs(pool, "pool")
    order = np.asarray(ranked_indices, dtype=np.int64)
    if order.ndim != 1 or len(order) == 0:
        raise ValueError("ranked_indices must be a non-empty 1-d array of pool indices")
    if order.min() < 0 or order.max() >= len(pool):
        raise IndexError(f"ranked_indices out of range for a pool of {len(pool)} documents")
    if len(np.unique(order)) != len(order):
        raise ValueError("ranked_indices holds duplicate pool indices")
    if ranked_scores is not None:
        ranked_scores = np.asarray(ranked_scores, dtype=np.float64)
        if ranked_scores.shape != order.shape:
            raise ValueError("ranked_scores and ranked_indices differ in length")
        if np.any(np.diff(ranked_scores) > 0):
            raise ValueError("ranked_scores are not in descending order")
    counts = token_count_array(pool, token_counts)
    chosen, met = _cut(order, counts, budget, allow_short, f"{strategy}/{domain}")
    docs = [pool[i] for i in chosen]
    sel_counts = counts[chosen].tolist()
    total = int(sum(sel_counts))
    info = {"pool_docs": len(pool), "ranked_docs": len(order), **dict(meta or {})}
    if ranked_scores is not None:
        info["min_selected_score"] = float(ranked_scores[len(chosen) - 1])
    return Selection(strategy=strategy, domain=domain, doc_ids=[d.doc_id for d in docs],
                     token_counts=[int(c) for c in sel_counts], total_tokens=total, budget=budget,
                     scores=None if ranked_scores is None else ranked_scores[:len(chosen)].tolist(),
                     budget_met=met, overshoot=total - budget if met else 0,
                     breakdown=_breakdown(docs, sel_counts), meta=info)


def general_baseline(pool: Sequence[Document], token_counts: Mapping[str, int] | Sequence[int],
                     budget: int, *, domain: str, seed: int = 0,
                     allow_short: bool = False) -> Selection:
    """The same token budget drawn uniformly at random (seeded) from the general pool."""
    if len(pool) == 0:
        raise ValueError("the pool is empty")
    order = np.random.default_rng(seed).permutation(len(pool))
    return select_to_budget(pool, order, None, token_counts, budget, strategy="general",
                            domain=domain, allow_short=allow_short, meta={"seed": seed})


def seed_only_baseline(seed_docs: Sequence[Document],
                       token_counts: Mapping[str, int] | Sequence[int], passes: int, *,
                       domain: str) -> Selection:
    """The seed set alone, to be trained on ``passes`` times (the paper's "Validation")."""
    if len(seed_docs) == 0:
        raise ValueError("the seed set is empty")
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    _check_docs(seed_docs, "seed_docs")
    counts = token_count_array(seed_docs, token_counts).tolist()
    return Selection(strategy="seed_only", domain=domain,
                     doc_ids=[d.doc_id for d in seed_docs], token_counts=[int(c) for c in counts],
                     total_tokens=int(sum(counts)), budget=None, passes=passes,
                     breakdown=_breakdown(seed_docs, counts), meta={"seed_docs": len(seed_docs)})


def prefilter(ranked_indices: np.ndarray, counts: np.ndarray, tokens: int) -> np.ndarray:
    """The TracIn candidate pool: ranked pool indices, best first, until their LM tokens reach
    ``tokens`` (the same whole-document rule as a selection; ``counts`` is aligned with the
    pool). Raises ValueError if the ranking holds fewer tokens."""
    ranked = np.asarray(ranked_indices, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if ranked.ndim != 1 or len(ranked) == 0:
        raise ValueError("ranked_indices must be a non-empty 1-d array of pool indices")
    chosen, _ = _cut(ranked, counts, int(tokens), False, "TracIn prefilter")
    return chosen
