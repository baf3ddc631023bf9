"""``data.storage="arrow"``: the same splits as ``corpora.assemble_splits``, without ever
holding the general text as a list of Documents.

The general sources are streamed once: every document is appended to a staging table on disk
while only fixed-size facts about it stay in memory (its SHA-1 text hash, word count, the
two seeded sort keys of ``splitting.hash_order`` and, for the few documents ``max_words``
cuts into pieces, the pieces' hashes): ~110 bytes a document, O(documents), not O(text).
De-duplication, the held-out share, the word cap, the pool's seeded order and the final
disjointness pass are decided from those facts with exactly the list path's rules (stable
sorts, first-seen wins); then each general split is written by reading its rows from the
memory-mapped staging table in output order, one batch at a time. Subdomain and bios splits
are small and are built as lists by the shared code, then written as tables.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ssae_utils.data.chunking import chunk_document
from ssae_utils.data.config import DataConfig
from ssae_utils.data.documents import Document, text_hash, word_count
from ssae_utils.data.splitting import dedup
from ssae_utils.data.table import BATCH_ROWS, DocumentTable, TableWriter, write_table
from ssae_utils.domains import Domain
from ssae_utils.io import atomic_path

__all__ = ["build_arrow_splits"]


def _order_key(seed: int, salt: str, doc_id: str) -> bytes:
    # the digest of splitting.hash_order's key: bytewise order == its hex-string order
    return hashlib.sha256(f"{seed}|{salt}|{doc_id}".encode()).digest()


def _stable_order(keys: bytes | bytearray) -> np.ndarray:
    """Positions sorted by 32-byte key, ties in input order (``sorted`` is stable too)."""
    n = len(keys) // 32
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.frombuffer(bytes(keys), dtype=">u8").reshape(n, 4)   # big-endian: numeric == bytewise
    return np.lexsort((np.arange(n), cols[:, 3], cols[:, 2], cols[:, 1], cols[:, 0]))


class _GeneralFacts:
    """What the split decisions need of each general document, in input order."""

    def __init__(self) -> None:
        self.n = 0
        self.text = bytearray()            # 20-byte SHA-1 digests (text_hash)
        self.words = array("q")
        self.general_key = bytearray()     # 32-byte sort keys, salt "general"
        self.pool_key = bytearray()        # salt "pool"
        self.claimed = bytearray()         # 1: a domain or bios owns the text
        self.pieces: dict[int, list[bytes]] = {}   # only documents that chunking cuts

    def add(self, doc: Document, cfg: DataConfig, claimed: set[str], owner: dict[str, str],
            removals: dict[str, int]) -> None:
        h = text_hash(doc.text)
        who = owner.get(h)
        if who is not None:
            removals[who] += 1
        self.text += bytes.fromhex(h)
        self.words.append(doc.n_words)
        self.general_key += _order_key(cfg.split_seed, "general", doc.doc_id)
        self.pool_key += _order_key(cfg.split_seed, "pool", doc.doc_id)
        self.claimed.append(h in claimed)
        if doc.n_words > cfg.max_words:
            pieces = chunk_document(doc, cfg.max_words)
            if len(pieces) > 1:
                self.pieces[self.n] = [bytes.fromhex(text_hash(p.text)) for p in pieces]
        self.n += 1

    def digest(self, i: int) -> bytes:
        return bytes(self.text[20 * i: 20 * i + 20])

    def piece_digests(self, i: int) -> list[bytes]:
        return self.pieces.get(i) or [self.digest(i)]


def _stream_general(cfg: DataConfig, extra: Sequence[Document], load_iter) -> Iterator[Document]:
    for name in cfg.general_sources:
        for doc in load_iter(name):
            if doc.n_words >= cfg.min_words:
                yield doc
    yield from extra


def _keep_pieces(digests: list[bytes], final_claimed: set[bytes]) -> tuple[int, ...] | None:
    """Which pieces survive the final disjointness pass (``dedup`` over pieces, in order);
    None: all of them. Updates ``final_claimed``."""
    keep = []
    for j, d in enumerate(digests):
        if d not in final_claimed:
            final_claimed.add(d)
            keep.append(j)
    return None if len(keep) == len(digests) else tuple(keep)


def _write_split(path: Path, entries: Iterable[tuple[str, int, tuple[int, ...] | None]], staging: DocumentTable,
                 planted: Sequence[Document], cfg: DataConfig, transform) -> dict[str, int]:
    """Write one general split: ``entries`` are (``"g"`` staging row | ``"p"`` planted index,
    the pieces to keep or None). Rows are read from the staging table a batch at a time."""
    stats = {"docs": 0, "words": 0}

    def docs() -> Iterator[Document]:
        batch: list[tuple[str, int, Any]] = []

        def flush() -> Iterator[Document]:
            rows = [i for kind, i, _ in batch if kind == "g"]
            fetched = iter(staging.take(rows))
            for kind, i, keep in batch:
                doc = transform(next(fetched)) if kind == "g" else planted[i]
                pieces = chunk_document(doc, cfg.max_words)
                for j in (range(len(pieces)) if keep is None else keep):
                    stats["docs"] += 1
                    stats["words"] += pieces[j].n_words
                    yield pieces[j]

        for entry in entries:
            batch.append(entry)
            if len(batch) >= BATCH_ROWS:
                yield from flush()
                batch = []
        if batch:
            yield from flush()

    write_table(docs(), path)
    return stats


def build_arrow_splits(cfg: DataConfig, domains: Sequence[Domain], folder: Path, assigned: Any,
                       priority: Sequence[str], load_iter, label) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Write every split of ``folder`` as ``<split>.arrow``; returns per-split stats
    (docs, words) and the pool removals per domain. ``assigned``: the non-general splits
    (``corpora._assign_non_general``); ``load_iter(name)``: a general source's documents."""
    stats: dict[str, dict[str, int]] = {}
    # 1. Non-general splits: chunk and make disjoint in priority order, as the list path does.
    final_claimed_hex: set[str] = set()
    general_splits = ("general_heldout", "general_pool")
    if tuple(priority[-2:]) != general_splits:   # the general splits must come last (lowest priority)
        raise AssertionError(f"unexpected split priority {priority}")
    for name in priority[:-2]:
        pieces = [p for d in assigned.splits[name] for p in chunk_document(d, cfg.max_words)]
        docs = dedup(pieces, final_claimed_hex)
        write_table(docs, folder / f"{name}.arrow")
        stats[name] = {"docs": len(docs), "words": sum(d.n_words for d in docs)}
    final_claimed = {bytes.fromhex(h) for h in final_claimed_hex}
    del final_claimed_hex

    # 2. Stream the general text once: to a staging table, keeping only its facts.
    removals = {dom.name: 0 for dom in domains}
    facts = _GeneralFacts()
    staging_path = folder / ".general_staging.arrow"
    with atomic_path(staging_path) as tmp:
        writer = TableWriter(tmp)
        try:
            for doc in _stream_general(cfg, assigned.extra_general, load_iter):
                facts.add(doc, cfg, assigned.claimed, assigned.owner, removals)
                writer.write(doc)
        finally:
            writer.close()
    staging = DocumentTable(staging_path)
    try:
        # 3. dedup(hash_order(general + extra, seed, "general"), claimed)
        seen: set[bytes] = set()
        kept = array("q")
        for i in _stable_order(facts.general_key).tolist():
            if facts.claimed[i]:
                continue
            d = facts.digest(i)
            if d not in seen:
                seen.add(d)
                kept.append(i)
        del seen
        kept_np = np.frombuffer(kept, dtype=np.int64) if len(kept) else np.zeros(0, dtype=np.int64)
        # take_share, then take_words on the rest (whole documents until the budget is reached)
        n_heldout = int(round(cfg.general_heldout_share * len(kept_np)))
        heldout, pool = kept_np[:n_heldout], kept_np[n_heldout:]
        if cfg.general_max_words is not None and len(pool):
            words = np.frombuffer(facts.words, dtype=np.int64)[pool]
            before = np.cumsum(words) - words          # words taken before each document
            over = np.nonzero(before >= cfg.general_max_words)[0]
            if len(over):
                pool = pool[: over[0]]
        # hash_order(pool + planted, seed, "pool")
        pool_keys = bytearray()
        for i in pool.tolist():
            pool_keys += facts.pool_key[32 * i: 32 * i + 32]
        for d in assigned.planted:
            pool_keys += _order_key(cfg.split_seed, "pool", d.doc_id)
        members = [("g", int(i)) for i in pool.tolist()] + [("p", j) for j in range(len(assigned.planted))]
        pool_order = [members[k] for k in _stable_order(pool_keys).tolist()]

        # 4. the final disjointness pass over pieces, held-out first (it outranks the pool)
        def entries_heldout() -> Iterator[tuple[str, int, Any]]:
            for i in heldout.tolist():
                keep = _keep_pieces(facts.piece_digests(i), final_claimed)
                if keep != ():
                    yield "g", i, keep

        planted_digests = [[bytes.fromhex(text_hash(p.text)) for p in chunk_document(d, cfg.max_words)]
                           for d in assigned.planted]

        def entries_pool() -> Iterator[tuple[str, int, Any]]:
            for kind, i in pool_order:
                digests = facts.piece_digests(i) if kind == "g" else planted_digests[i]
                keep = _keep_pieces(digests, final_claimed)
                if keep != ():
                    yield kind, i, keep

        # the held-out entries are consumed (and claim their pieces) before the pool's are decided
        stats["general_heldout"] = _write_split(folder / "general_heldout.arrow", entries_heldout(), staging,
                                                assigned.planted, cfg, lambda d: d)
        stats["general_pool"] = _write_split(folder / "general_pool.arrow", entries_pool(), staging,
                                             assigned.planted, cfg, label)
    finally:
        del staging
        os.unlink(staging_path)
    return stats, removals
