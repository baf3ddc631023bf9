"""Deterministic ordering, de-duplication and budgeted takes: the primitives of every split.

Split order is a keyed hash of each document id (not Python's ``random`` or ``hash``), so a split
depends only on the split seed and the documents themselves: adding a document elsewhere
never reshuffles the rest, and the result is identical on every machine. Samples taken
*from* a split for a stage (``sample_whole_documents``) use a seeded ``random.Random``.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from typing import Callable, Hashable, Iterable, Sequence

from ssae_utils.data.documents import Document, text_hash


def hash_order(docs: Iterable[Document], seed: int, salt: str) -> list[Document]:
    """A seeded, platform-independent shuffle."""
    def key(doc: Document) -> str:
        return hashlib.sha256(f"{seed}|{salt}|{doc.doc_id}".encode()).hexdigest()
    return sorted(docs, key=key)


def dedup(docs: Iterable[Document], claimed: set[str] | None = None) -> list[Document]:
    """Keep the first document of each exact text; skip texts already in ``claimed``.

    ``claimed`` is updated in place, so calling this split by split in priority order makes
    the splits disjoint.
    """
    seen = claimed if claimed is not None else set()
    out = []
    for doc in docs:
        h = text_hash(doc.text)
        if h not in seen:
            seen.add(h)
            out.append(doc)
    return out


def take_words(docs: Sequence[Document], budget: int | None) -> tuple[list[Document], list[Document]]:
    """Split ``docs`` (in order) into a head of about ``budget`` words and the rest.

    Documents are taken whole until the running total reaches the budget; ``None`` takes all.
    """
    if budget is None:
        return list(docs), []
    total = 0
    for i, doc in enumerate(docs):
        if total >= budget:
            return list(docs[:i]), list(docs[i:])
        total += doc.n_words
    return list(docs), []


def take_share(docs: Sequence[Document], share: float) -> tuple[list[Document], list[Document]]:
    n = int(round(share * len(docs)))
    return list(docs[:n]), list(docs[n:])


def stratified_share(docs: Sequence[Document], share: float,
                     group: Callable[[Document], Hashable]) -> tuple[list[Document], list[Document]]:
    """``take_share`` within each group (keeps group proportions in both parts)."""
    groups: dict[Hashable, list[Document]] = defaultdict(list)
    for doc in docs:
        groups[group(doc)].append(doc)
    head: list[Document] = []
    rest: list[Document] = []
    for key in sorted(groups, key=repr):
        h, r = take_share(groups[key], share)
        head += h
        rest += r
    return head, rest


def sample_whole_documents(docs: Sequence[Document], size_of: Callable[[int], int], budget: int,
                           seed: int) -> tuple[list[Document], int]:
    """A seeded random sample of whole documents whose sizes first reach ``budget``.

    ``size_of(i)`` is document i's size in the caller's unit (tokens, contexts); it is only
    asked for the documents visited. Returns (documents, total size)."""
    if not docs:
        raise ValueError("cannot sample from an empty document list")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    picked, total = [], 0
    for i in order:
        if total >= budget:
            break
        picked.append(docs[i])
        total += size_of(i)
    return picked, total

