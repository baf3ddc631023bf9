"""Retrieval quality against the known positives planted in the pool, and overlap between
strategies.

The embedded pool holds a labelled share of physics documents and insults
(``meta["known_domain"]``, ``Corpora.known_positives(domain)``). They are a *lower bound* on
the relevant documents (the pool also holds unlabelled physics-like Wikipedia leads and rude
comments), so precision here counts only the planted ones: read it comparatively, between
strategies at the same budget, not as an absolute.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

__all__ = ["precision_recall", "precision_at_k", "recall_at_k", "jaccard", "overlap_matrix",
           "selection_quality", "auroc", "score_histograms"]


def _ids(items: Iterable[Any]) -> set[str]:
    return {getattr(x, "doc_id", x) for x in items}


def precision_recall(selected: Iterable[Any], positives: Iterable[Any]) -> dict[str, float | int]:
    """Precision, recall and F1 of a selected id set against the known positives.

    Accepts doc ids or Documents. Empty selection: precision 0. No known positives (the paper
    profile plants none in OpenWebText: ``pool_share`` 0): precision, recall and F1 are
    undefined and reported as None, not as 0.
    """
    sel, pos = _ids(selected), _ids(positives)
    if not pos:
        return {"hits": 0, "selected": len(sel), "positives": 0, "precision": None, "recall": None, "f1": None}
    hits = len(sel & pos)
    precision = hits / len(sel) if sel else 0.0
    recall = hits / len(pos)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"hits": hits, "selected": len(sel), "positives": len(pos),
            "precision": precision, "recall": recall, "f1": f1}


def precision_at_k(ranked: Sequence[Any], positives: Iterable[Any], k: int) -> float | None:
    """Share of the first ``k`` ranked ids that are positives (k larger than the ranking
    counts the missing ranks as misses); None without known positives (undefined)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    pos = _ids(positives)
    if not pos:
        return None
    top = [getattr(x, "doc_id", x) for x in list(ranked)[:k]]
    return sum(t in pos for t in top) / k


def recall_at_k(ranked: Sequence[Any], positives: Iterable[Any], k: int) -> float:
    if k < 1:
        raise ValueError("k must be >= 1")
    pos = _ids(positives)
    if not pos:
        raise ValueError("no known positives: recall is undefined")
    top = {getattr(x, "doc_id", x) for x in list(ranked)[:k]}
    return len(top & pos) / len(pos)


def jaccard(a: Iterable[Any], b: Iterable[Any]) -> float:
    """|A ∩ B| / |A ∪ B| of two doc-id sets; two empty sets give 1.0."""
    sa, sb = _ids(a), _ids(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0


def overlap_matrix(selections: dict[str, Iterable[Any]]) -> dict[str, dict[str, float]]:
    """Pairwise Jaccard between named selections (doc-id iterables or Selection.doc_ids)."""
    sets = {name: _ids(getattr(s, "doc_ids", s)) for name, s in selections.items()}
    return {a: {b: jaccard(sets[a], sets[b]) for b in sets} for a in sets}


def selection_quality(selection, positives: Iterable[Any],
                      ks: Sequence[int] = (10, 100, 1000)) -> dict[str, Any]:
    """Precision/recall of a ``Selection`` plus precision@k along its rank order."""
    out: dict[str, Any] = {"strategy": selection.strategy, "domain": selection.domain,
                           **precision_recall(selection.doc_ids, positives)}
    pos = list(positives)
    if selection.scores is not None:   # rank order is meaningful only for retrievers
        out["precision_at_k"] = {int(k): precision_at_k(selection.doc_ids, pos, k)
                                 for k in ks if k <= selection.n_docs}
    return out


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` separating ``labels`` (True = positive): the
    probability that a random positive outscores a random negative, ties counting half
    (Mann-Whitney U). None when either class is empty (undefined, reported as such)."""
    import numpy as np
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d of equal length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score_histograms(scores: Sequence[float], is_positive: Sequence[bool], bins: int) -> dict[str, Any]:
    """Histograms of ``scores`` for the planted positives vs every other document, on shared
    edges (the figures' score distributions)."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(is_positive, dtype=bool)
    edges = np.linspace(float(s.min()), float(s.max()) + 1e-12, bins + 1)
    return {"edges": edges.tolist(), "positives": np.histogram(s[pos], edges)[0].tolist(),
            "others": np.histogram(s[~pos], edges)[0].tolist()}

