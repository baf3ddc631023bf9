"""The BM25 tokenization, one rule for documents and queries.

1. the text must be a ``str`` that encodes to UTF-8 (bytes, None, numbers, or strings with
   lone surrogates raise: decode raw bytes first with ``ssae_utils.data.decode_bytes``);
2. Unicode case folding via ``str.lower()`` (after NFC normalization);
3. tokens are the maximal runs of the Unicode word class ``\\w+`` (letters, digits and
   underscore in any script; apostrophes and hyphens split: "don't" -> "don", "t";
   "quasi-particle" -> "quasi", "particle");
4. tokens in ``STOPWORDS`` (a small built-in list of English function words) are dropped,
   and so are single-character tokens that are not digits ("t", "s" from contractions);
5. no stemming ("photons" and "photon" are different terms), no length cap.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

TOKEN_RE = re.compile(r"\w+", re.UNICODE)

# Function words only (no domain words such as "energy" or "idiot"), so the list never hides
# a subdomain's vocabulary. Close to the classic SMART/NLTK core.
STOPWORDS: frozenset[str] = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
also may might must shall us upon yet via per whose
""".split())


def check_text(text: object, what: str = "text") -> str:
    """Return ``text`` if it is a str that encodes to UTF-8, else raise a clear error."""
    if isinstance(text, (bytes, bytearray)):
        raise TypeError(f"{what} is bytes; decode it first (ssae_utils.data.decode_bytes)")
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{what} is not valid Unicode text (it cannot be encoded as UTF-8: "
                         f"{err.reason} at position {err.start})") from None
    return text


def check_texts(texts: Sequence[object], what: str = "texts") -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of str, not a single {type(texts).__name__}")
    return [check_text(t, f"{what}[{i}]") for i, t in enumerate(texts)]


def tokenize(text: str) -> list[str]:
    """The BM25 terms of ``text`` (see the module docstring for the exact rule)."""
    text = unicodedata.normalize("NFC", check_text(text)).lower()
    return [t for t in TOKEN_RE.findall(text)
            if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


def tokenize_all(texts: Iterable[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]
