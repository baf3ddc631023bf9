"""The data card: documents, words (and tokens, given a tokenizer) per split and source."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

from ssae_utils.data.documents import Document

Tokenizer = Callable[[str], "int | Sequence[Any]"]
ALL = "(all)"


def _n_tokens(tokenizer: Tokenizer, text: str) -> int:
    out = tokenizer(text)
    return out if isinstance(out, int) else len(out)


def data_card(splits: Mapping[str, Iterable[Document]] | Any,
              tokenizer: Tokenizer | None = None, domains: Sequence[str] | None = None,
              counts: Mapping[str, Sequence[int]] | None = None) -> list[dict[str, Any]]:
    """Rows ``{split, source, docs, words, [tokens], decode_error_docs, known_<domain>...}``.

    One row per (split, source) and one ``source="(all)"`` total per split. ``splits`` is a
    ``Corpora`` or any mapping of split name -> documents. ``tokenizer(text)`` may return a
    token count or a token sequence. ``known_<domain>`` counts the documents labelled as
    belonging to each of ``domains`` (None: every label found, sorted). ``counts[split]``:
    the token count of each of the split's documents, in order, instead of a tokenizer.
    """
    items = list(splits.items() if hasattr(splits, "items") else splits)
    if domains is None:
        domains = sorted({d.meta["known_domain"] for _, docs in items for d in docs if d.meta.get("known_domain")})
    known_names = tuple(domains)
    if counts is not None and tokenizer is not None:
        raise ValueError("give data_card a tokenizer or per-split token counts, not both")
    with_tokens = tokenizer is not None or counts is not None
    rows: list[dict[str, Any]] = []
    for split, docs in items:
        per_source: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"docs": 0, "words": 0, "tokens": 0, "decode_error_docs": 0,
                     **{f"known_{name}": 0 for name in known_names}})
        split_counts = counts[split] if counts is not None else None
        for i, doc in enumerate(docs):
            n_tokens = split_counts[i] if split_counts is not None else \
                _n_tokens(tokenizer, doc.text) if tokenizer is not None else 0
            for key in (doc.source, ALL):
                row = per_source[key]
                row["docs"] += 1
                row["words"] += doc.n_words
                row["tokens"] += n_tokens
                row["decode_error_docs"] += int(bool(doc.meta.get("decode_replacements")))
                known = doc.meta.get("known_domain")
                if known in known_names:
                    row[f"known_{known}"] += 1
        if ALL not in per_source:
            per_source[ALL]  # an empty split still gets its total row
        for source in sorted(per_source, key=lambda s: (s == ALL, s)):
            row = {"split": split, "source": source, **per_source[source]}
            if not with_tokens:
                del row["tokens"]
            rows.append(row)
    return rows


def card_markdown(rows: list[dict[str, Any]]) -> str:
    """A GitHub-markdown table of ``data_card`` rows (zero-only columns left out)."""
    if not rows:
        return "(empty data card)\n"
    columns = [c for c in rows[0] if c in ("split", "source") or any(r.get(c) for r in rows)]
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if c not in ("split", "source") else "---" for c in columns) + "|"
    body = []
    for r in rows:
        cells = [f"{r[c]:,}" if isinstance(r.get(c), int) else str(r.get(c, "")) for c in columns]
        if r["source"] == ALL:
            cells = [f"**{c}**" for c in cells]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body]) + "\n"
