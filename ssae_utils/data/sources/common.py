"""Small readers shared by the embedded sources."""

from __future__ import annotations

import csv
import io
import sys

from ssae_utils.data.documents import decode_bytes

# Some CSV fields (whole news articles) exceed the csv module's 128 kB default.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def read_csv(raw: bytes, what: str) -> list[dict[str, str]]:
    """Rows of a CSV file held in memory (decoded with the package's UTF-8 policy)."""
    text, _ = decode_bytes(raw, what)
    return list(csv.DictReader(io.StringIO(text, newline="")))
