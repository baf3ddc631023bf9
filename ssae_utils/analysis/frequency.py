"""Token frequencies of the in-distribution test split and their log-spaced buckets.

Tokens are counted exactly as the SAEs see them: each document tokenized on its own without
special tokens and cut into BOS-prefixed contexts by ``ssae_utils.activations.chunk_token_ids``
(which drops a short trailing piece); the BOS at the start of each context is not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ssae_utils.activations import chunk_token_ids, encode


def split_token_counts(texts: Sequence[str], tokenizer: Any, vocab_size: int, bos_token_id: int,
                       context_length: int, min_tokens: int = 8) -> torch.Tensor:
    """Occurrences of every token id in ``texts`` -> long [vocab_size] (BOS of each context excluded)."""
    if len(texts) == 0:
        raise ValueError("no documents to count tokens in")
    ids: list[int] = []
    for text in texts:
        for piece in chunk_token_ids(encode(tokenizer, text), bos_token_id, context_length, min_tokens):
            ids.extend(piece[1:])
    return count_ids(torch.tensor(ids, dtype=torch.long), vocab_size)


def count_ids(token_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Occurrences per token id -> long [vocab_size]; ids outside the vocabulary are an error."""
    if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in 0..{vocab_size - 1}; got {int(token_ids.min())}..{int(token_ids.max())} "
                         "(tokenizer and model vocabulary disagree)")
    return torch.bincount(token_ids.long(), minlength=vocab_size)


@dataclass(frozen=True)
class Bucket:
    """Token types whose count is in [lo, hi)."""

    lo: int
    hi: int
    token_ids: tuple[int, ...]

    @property
    def label(self) -> str:
        return str(self.lo) if self.hi == self.lo + 1 else f"{self.lo}-{self.hi - 1}"


def log_buckets(counts: torch.Tensor, base: float = 2.0) -> list[Bucket]:
    """Buckets of the token types present in ``counts`` (count >= 1): bucket k holds the types
    whose count is in [ceil(base^k), ceil(base^(k+1))), up to the most frequent type.

    Integer edges, so every present type is in exactly one bucket; a bucket whose integer
    range is empty (base < 2 at small k) is skipped, and empty buckets are kept (share 0/0
    is reported as None by the caller)."""
    if base <= 1:
        raise ValueError(f"bucket base must be > 1, not {base}")
    if counts.ndim != 1:
        raise ValueError(f"counts must be [vocab], got shape {tuple(counts.shape)}")
    top = int(counts.max()) if counts.numel() else 0
    if top < 1:
        raise ValueError("no token occurs in the data: cannot bucket frequencies")
    buckets: list[Bucket] = []
    k, lo = 0, 1
    while lo <= top:
        hi = max(lo + 1, math.ceil(base ** (k + 1) - 1e-9))
        in_bucket = ((counts >= lo) & (counts < hi)).nonzero().flatten()
        buckets.append(Bucket(lo, hi, tuple(int(i) for i in in_bucket)))
        k += 1
        while math.ceil(base ** k - 1e-9) < hi:  # skip edges that round onto the same integer
            k += 1
        lo = hi
    return buckets
