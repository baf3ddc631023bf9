"""Document frequencies of a whole vocabulary without holding it: hashed term ids spilled to
disk, merged one partition at a time.

Why: rank-bm25's epsilon floor replaces a negative idf by ``epsilon * mean idf``, and the
mean runs over *every* distinct term of the corpus (OpenWebText: tens of millions of terms,
most of them seen once), so streaming BM25 needs ``n_terms`` and ``sum_v idf(df_v)`` without
a Python dict over the vocabulary.

How (``HashedDocFreq``):

1. ``add_batch``: the batch's own distinct terms get a 128-bit key (blake2b, digest 16 bytes,
   as two uint64) and the number of the batch's documents that hold them (each document's
   terms counted once). The ``(hi, lo, df)`` records (20 bytes each) are appended to one of
   ``partitions`` files chosen by the top bits of ``hi``; nothing stays in memory.
2. ``finalize(n_docs)``: each partition file is read, its records sorted by (hi, lo) and
   equal keys summed (``np.add.reduceat``): the number of distinct keys and the sum of
   ``log(N - df + 0.5) - log(df + 0.5)`` over them accumulate; the reduced, sorted partition
   is kept (``.npy``, memory-mapped) so ``lookup`` can find any term's df by binary search.

Memory: one partition at a time, i.e. about 3 x 20 bytes x (records / partitions) (the
records, the sort permutation, the reduced arrays). Records = the sum over batches of each
batch's distinct-term count (OpenWebText with 8192-document batches: ~1e9 records, ~20 GB
on disk, ~1 GB of RAM per partition at 64 partitions). Disk: 20 bytes per record, plus 20
bytes per distinct term for the reduced table.

Exactness: two distinct terms share a key with probability about n_terms^2 / 2^129 (1e-23
for 1e8 terms); ``StreamingBM25`` also recounts the query terms' df exactly while scoring
and raises if a looked-up df ever disagreed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["HashedDocFreq", "term_keys", "RECORD"]

RECORD = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("df", "<u4")])


def term_keys(terms: Iterable[str]) -> np.ndarray:
    """uint64 [n, 2]: the blake2b-128 key of each term (process- and machine-independent)."""
    raw = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in terms)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2)


class HashedDocFreq:
    """Document frequency of every term of a corpus seen in batches (see the module docstring)."""

    def __init__(self, spill_dir: str | Path | None = None, partitions: int = 64):
        if partitions < 1 or partitions & (partitions - 1):
            raise ValueError(f"partitions must be a power of two >= 1, not {partitions}")
        if spill_dir is not None:
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="bm25-df-", dir=spill_dir))
        self.partitions = partitions
        self._shift = np.uint64(64 - partitions.bit_length() + 1)
        self.records = 0
        self.n_terms: int | None = None      # set by finalize
        self.idf_sum: float | None = None

    def _raw(self, p: int) -> Path:
        return self.dir / f"raw_{p:04d}.bin"

    def add_batch(self, docs: Sequence[Sequence[str]]) -> None:
        """Count each document's distinct terms once (an empty document adds nothing)."""
        if self.n_terms is not None:
            raise RuntimeError("add_batch after finalize")
        vocab: dict[str, int] = {}
        ids: list[int] = []
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        for doc in docs:
            ids.extend([vocab.setdefault(t, len(vocab)) for t in doc])
        if not vocab:
            return
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        pairs = np.unique(rows * len(vocab) + np.asarray(ids, dtype=np.int64))
        df = np.bincount(pairs % len(vocab), minlength=len(vocab))
        keys = term_keys(vocab)                                  # dict order = local id order
        rec = np.empty(len(vocab), dtype=RECORD)
        rec["hi"], rec["lo"], rec["df"] = keys[:, 0], keys[:, 1], df
        part = (rec["hi"] >> self._shift).astype(np.int64) if self.partitions > 1 else np.zeros(len(rec), np.int64)
        order = np.argsort(part, kind="stable")
        rec, part = rec[order], part[order]
        bounds = np.searchsorted(part, np.arange(self.partitions + 1))
        for p in range(self.partitions):
            if bounds[p] < bounds[p + 1]:
                with open(self._raw(p), "ab") as handle:
                    rec[bounds[p]:bounds[p + 1]].tofile(handle)
        self.records += len(rec)

    def finalize(self, n_docs: int) -> None:
        """Merge the partitions: ``n_terms`` and ``idf_sum`` (rank-bm25's raw idf, summed)."""
        if n_docs < 1:
            raise ValueError("finalize needs the number of documents (>= 1)")
        n_terms, idf_sum = 0, 0.0
        for p in range(self.partitions):
            raw = self._raw(p)
            if not raw.exists():
                continue
            rec = np.fromfile(raw, dtype=RECORD)
            order = np.lexsort((rec["lo"], rec["hi"]))
            rec = rec[order]
            new = np.ones(len(rec), dtype=bool)
            new[1:] = (rec["hi"][1:] != rec["hi"][:-1]) | (rec["lo"][1:] != rec["lo"][:-1])
            starts = np.flatnonzero(new)
            df = np.add.reduceat(rec["df"].astype(np.int64), starts)
            n_terms += len(starts)
            idf_sum += float(np.sum(np.log(n_docs - df + 0.5) - np.log(df + 0.5)))
            np.save(self.dir / f"hi_{p:04d}.npy", rec["hi"][starts])
            np.save(self.dir / f"lo_{p:04d}.npy", rec["lo"][starts])
            np.save(self.dir / f"df_{p:04d}.npy", df)
            raw.unlink()
            del rec, order, new, starts, df
        self.n_terms, self.idf_sum = n_terms, idf_sum

    def lookup(self, terms: Sequence[str]) -> np.ndarray:
        """int64 [len(terms)]: each term's document frequency (0 for a term never seen)."""
        if self.n_terms is None:
            raise RuntimeError("lookup before finalize")
        out = np.zeros(len(terms), dtype=np.int64)
        if not len(terms):
            return out
        keys = term_keys(terms)
        part = (keys[:, 0] >> self._shift).astype(np.int64) if self.partitions > 1 else np.zeros(len(terms), np.int64)
        for p in np.unique(part):
            path = self.dir / f"hi_{p:04d}.npy"
            if not path.exists():
                continue
            hi = np.load(path, mmap_mode="r")
            lo = np.load(self.dir / f"lo_{p:04d}.npy", mmap_mode="r")
            dfs = np.load(self.dir / f"df_{p:04d}.npy", mmap_mode="r")
            for i in np.flatnonzero(part == p):
                left, right = np.searchsorted(hi, keys[i, 0], "left"), np.searchsorted(hi, keys[i, 0], "right")
                for j in range(left, right):
                    if lo[j] == keys[i, 1]:
                        out[i] = int(dfs[j])
                        break
        return out

    def close(self) -> None:
        """Delete the spill folder."""
        shutil.rmtree(self.dir, ignore_errors=True)
