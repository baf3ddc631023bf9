"""LM token counts per document, cached per tokenizer and shared by every stage.

Data cards, GSAE sampling and selection budgets all need the token count of the same
documents; tokenizing the embedded corpora takes ~25 s, so each document is counted once
per tokenizer. The cache is one JSON file per tokenizer, ``{"format": 2, "xxh3_128": ...,
"counts": {document content hash: count}}``, extended with whatever a later request adds.

A count read back wrong would silently move every token budget, so the file is checked when
read: the digest of the counts (catches a changed digit), and every entry must map a string
to a non-negative int (catches JSON of the wrong shape). A file that fails is recounted with
a warning. A plain map (format 1, before digests) gets the shape check only, and is written
in the new format the next time a request adds counts.
"""

from __future__ import annotations

import json
import logging

import xxhash
from typing import Any, Iterable, Sequence

from ssae_utils.activations import document_hash, encode
from ssae_utils.io import stable_hash, write_bytes_atomic
from ssae_utils.paths import cache_dir

log = logging.getLogger(__name__)


FORMAT = 2
# the file is this header, the counts as compact JSON, then "}\n": valid JSON whose digest
# covers the raw bytes of the counts (hashing them costs ~1% of parsing them; re-serialising
# the parsed map to hash it would cost more than the parse)
_HEADER = '{{"format": 2, "xxh3_128": "{}", "counts": '
_HEADER_LEN = len(_HEADER.format("0" * 32))


def _checked(raw: bytes) -> dict[str, int]:
    """The counts in a cache file's bytes; ValueError saying what is wrong with them."""
    data = json.loads(raw)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        digest = data.get("xxh3_128")
        if (not isinstance(digest, str) or not raw.startswith(_HEADER.format(digest).encode())
                or xxhash.xxh3_128_hexdigest(raw[_HEADER_LEN:-2]) != digest):
            raise ValueError("its counts do not match their digest")
        counts = data["counts"]
    elif isinstance(data, dict) and "format" not in data:
        counts = data                                  # format 1: a plain map, shape check only
    else:
        raise ValueError(f"it is not a token-count map (a {type(data).__name__})")
    values = counts.values()
    # set(map(type)) and min() run in C: ~30 ms per million documents (bool, an int subclass, is refused too)
    if (set(map(type, values)) - {int}) or (values and min(values) < 0):
        h, n = next((h, n) for h, n in counts.items() if type(n) is not int or n < 0)
        raise ValueError(f"document {h} has count {n!r}, not a non-negative int")
    return counts


def _cache(tokenizer_id: str) -> tuple[Any, dict[str, int]]:
    path = cache_dir("token_counts") / f"{stable_hash({'tokenizer': tokenizer_id})}.json"
    known: dict[str, int] = {}
    if path.exists():
        try:
            known = _checked(path.read_bytes())
        except (ValueError, KeyError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            log.warning("damaged token-count cache %s (%s): recounting", path, err)
    return path, known


def _write(path: Any, known: dict[str, int]) -> None:
    body = json.dumps(known, separators=(",", ":")).encode("utf-8")
    write_bytes_atomic(path, _HEADER.format(xxhash.xxh3_128_hexdigest(body)).encode() + body + b"}\n")


def token_counts(texts: Sequence[str], tokenizer: Any, tokenizer_id: str) -> list[int]:
    """Number of tokens of each text (no special tokens); only uncounted texts are tokenized."""
    path, known = _cache(tokenizer_id)
    hashes = [document_hash(t) for t in texts]
    missing = {h: t for h, t in zip(hashes, texts) if h not in known}
    if missing:
        known.update(zip(missing, count_tokens(list(missing.values()), tokenizer)))
        _write(path, known)
    return [known[h] for h in hashes]


def token_counts_batched(batches: Iterable[Sequence[str]], tokenizer: Any, tokenizer_id: str) -> list[int]:
    """``token_counts`` of texts that arrive batch by batch (``DocumentTable.iter_text_batches``):
    only one batch of text is held at a time, and the same cache is read and extended."""
    path, known = _cache(tokenizer_id)
    out: list[int] = []
    added = False
    for texts in batches:
        hashes = [document_hash(t) for t in texts]
        missing = {h: t for h, t in zip(hashes, texts) if h not in known}
        if missing:
            known.update(zip(missing, count_tokens(list(missing.values()), tokenizer)))
            added = True
        out.extend(known[h] for h in hashes)
    if added:
        _write(path, known)
    return out


def document_token_counts(docs: Sequence[Any], tokenizer: Any, tokenizer_id: str) -> list[int]:
    """Token counts of Documents: a ``DocumentTable`` is counted from its text column a batch
    at a time (no Documents built, no list of every text), a list as ``token_counts``."""
    if hasattr(docs, "iter_text_batches"):
        return token_counts_batched(docs.iter_text_batches(BATCH_DOCS), tokenizer, tokenizer_id)
    return token_counts([d.text for d in docs], tokenizer, tokenizer_id)


BATCH_DOCS = 2048  # documents per call of a fast tokenizer: its Rust side splits a batch over every core


def count_tokens(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """Token counts (no special tokens), equal to ``len(encode(tokenizer, t))``: a Hugging
    Face fast tokenizer counts whole batches in parallel (the paper's 8M OpenWebText
    documents take one core ~1 h); any other tokenizer is called once per text."""
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"documents must be str, got {type(t).__name__}")
    if not getattr(tokenizer, "is_fast", False):
        return [len(encode(tokenizer, t)) for t in texts]
    out: list[int] = []
    for start in range(0, len(texts), BATCH_DOCS):
        batch = tokenizer(list(texts[start : start + BATCH_DOCS]), add_special_tokens=False,
                          return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        out.extend(len(ids) for ids in batch)
    return out
