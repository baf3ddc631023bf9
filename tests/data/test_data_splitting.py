"""Seeded whole-document samples (GSAE training/held-out samples, evaluation sets)."""

from __future__ import annotations

import pytest

from ssae_utils.data.documents import make_document
from ssae_utils.data.splitting import sample_whole_documents


def _docs(n):
    return [make_document(f"text number {i}", "smoke") for i in range(n)]


def test_sample_reaches_the_budget_with_whole_documents_and_is_seeded():
    docs = _docs(20)
    picked, total = sample_whole_documents(docs, lambda i: 3, 10, seed=1)
    assert len(picked) == 4 and total == 12                       # the crossing document is kept
    assert picked == sample_whole_documents(docs, lambda i: 3, 10, seed=1)[0]
    assert picked != sample_whole_documents(docs, lambda i: 3, 10, seed=2)[0]
    asked = []
    sample_whole_documents(docs, lambda i: asked.append(i) or 5, 10, seed=1)
    assert len(asked) == 2                                        # sizes only of visited documents
    everything, total = sample_whole_documents(docs, lambda i: 1, 100, seed=0)
    assert len(everything) == 20 and total == 20                  # short: all of them
    with pytest.raises(ValueError, match="empty"):
        sample_whole_documents([], lambda i: 1, 10, seed=0)
