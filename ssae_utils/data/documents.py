"""The unit of text every stage passes around: a ``Document``, its text normalization and JSONL IO.

Decoding policy (one rule for every source): bytes are decoded as UTF-8. A file that is not
valid UTF-8 is *not* rejected and *not* guessed at (no cp1252/latin-1 heuristics): it is
decoded with ``errors="replace"``, every undecodable byte becomes U+FFFD, and the number of
replacements is stored in ``meta["decode_replacements"]`` so the data card reports how many
documents were affected (in the embedded corpora: exactly one BBC article, whose "£" is a
latin-1 byte).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from ssae_utils.io import atomic_path

log = logging.getLogger(__name__)

REPLACEMENT_CHAR = "\ufffd"
DOC_ID_HEX = 16  # 64 bits: no collision in practice at paper scale (millions of documents)


@dataclass(frozen=True)
class Document:
    """One document. ``doc_id`` is derived from ``source`` and ``text``, so it is reproducible."""

    doc_id: str
    text: str
    source: str
    topic: str | None = None
    # Free-form, JSON-serialisable labels (title, toxic, profession, gender, parent_id, ...).
    # Treat as read-only: build a new Document with ``with_meta`` instead of mutating it.
    meta: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # meta is a dict, so hash on the identity that matters
        return hash(self.doc_id)

    @property
    def n_words(self) -> int:
        return word_count(self.text)

    def with_meta(self, **extra: Any) -> "Document":
        return replace(self, meta={**self.meta, **extra})

    def to_dict(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "text": self.text, "source": self.source,
                "topic": self.topic, "meta": self.meta}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Document":
        return cls(doc_id=row["doc_id"], text=row["text"], source=row["source"],
                   topic=row.get("topic"), meta=dict(row.get("meta") or {}))


def text_hash(text: str) -> str:
    """SHA-1 of the (already normalized) text: the key for exact de-duplication."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def make_doc_id(source: str, text: str) -> str:
    return f"{source}:{text_hash(text)[:DOC_ID_HEX]}"


def make_document(text: str, source: str, topic: str | None = None,
                  meta: dict[str, Any] | None = None) -> Document:
    """Normalize ``text`` and build a Document with its deterministic id."""
    clean = normalize_text(text)
    return Document(make_doc_id(source, clean), clean, source, topic, dict(meta or {}))


_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_WS = re.compile(r"[ \t]+\n")


def normalize_text(text: str) -> str:
    """NFC, Unix newlines, no trailing spaces, at most one blank line in a row, stripped.

    Deliberately light: the language model should see the text as published, so no
    lower-casing, no punctuation or whitespace squeezing inside lines.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_WS.sub("\n", text)
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip()


def decode_bytes(raw: bytes, what: str = "data") -> tuple[str, int]:
    """Decode UTF-8; undecodable bytes become U+FFFD. Returns (text, number of replacements)."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        n_bad = text.count(REPLACEMENT_CHAR) - raw.count(REPLACEMENT_CHAR.encode("utf-8"))
        log.warning("%s is not valid UTF-8: %d byte(s) replaced by U+FFFD", what, n_bad)
        return text, max(n_bad, 1)


def document_from_bytes(raw: bytes, source: str, topic: str | None = None,
                        meta: dict[str, Any] | None = None, what: str = "data") -> Document:
    """``make_document`` for raw bytes, recording decode replacements in the metadata."""
    text, n_bad = decode_bytes(raw, what)
    meta = dict(meta or {})
    if n_bad:
        meta["decode_replacements"] = n_bad
    return make_document(text, source, topic, meta)


def word_count(text: str) -> int:
    return len(text.split())


def save_jsonl(docs: Iterable[Document], path: str | os.PathLike) -> int:
    """Write one JSON object per line, atomically. Returns the number of documents."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike) -> Iterator[Document]:
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield Document.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError) as err:
                raise ValueError(f"{path}:{lineno} is not a Document record ({err}); "
                                 f"delete {path} and rebuild it.") from err


def load_jsonl(path: str | os.PathLike) -> list[Document]:
    return list(iter_jsonl(path))
