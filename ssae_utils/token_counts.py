"""LM token counts per document, cached by (tokenizer, document contents).

Selections are budgeted in LM tokens, so every pool document needs its count; tokenizing
the embedded pool takes ~20 s, so the counts are computed once and stored.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ssae_utils.activations import document_hash, encode
from ssae_utils.io import stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir


def token_counts(texts: Sequence[str], tokenizer: Any, tokenizer_id: str) -> list[int]:
    """Number of tokens of each text (no special tokens), cached on disk."""
    key = stable_hash({"tokenizer": tokenizer_id, "docs": [document_hash(t) for t in texts]})
    path = cache_dir("token_counts") / f"{key}.json"
    if path.exists():
        try:
            counts = json.loads(path.read_text())
            if isinstance(counts, list) and len(counts) == len(texts):
                return counts
        except json.JSONDecodeError:
            pass  # a damaged cache entry is recomputed below
    counts = [len(encode(tokenizer, text)) for text in texts]
    write_json_atomic(path, counts)
    return counts
