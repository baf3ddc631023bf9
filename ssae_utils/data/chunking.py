"""Split long documents (plays, arXiv papers, long news) into pieces of at most ~max_words.

Pieces follow the text's own structure: paragraphs (blank lines) are packed greedily; a
paragraph that is itself too long is cut at sentence ends, and a run-on "sentence" at word
boundaries. A tail shorter than max_words / 4 is merged into the previous piece so no piece is
a fragment; hence every piece has fewer than 1.25 * max_words words.
"""

from __future__ import annotations

import re

from ssae_utils.data.documents import Document, make_doc_id, word_count

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")


def _units(text: str, max_words: int) -> list[str]:
    """Paragraphs, or sentences/word windows of paragraphs longer than ``max_words``."""
    out: list[str] = []
    for para in _PARAGRAPHS.split(text):
        if not para.strip():
            continue
        if word_count(para) <= max_words:
            out.append(para.strip())
            continue
        for sent in _SENTENCES.split(para):
            words = sent.split()
            for start in range(0, len(words), max_words):
                out.append(" ".join(words[start:start + max_words]))
    return out


def chunk_text(text: str, max_words: int) -> list[str]:
    if word_count(text) <= max_words:
        return [text]
    chunks: list[list[str]] = []
    sizes: list[int] = []
    for unit in _units(text, max_words):
        n = word_count(unit)
        if chunks and sizes[-1] + n <= max_words:
            chunks[-1].append(unit)
            sizes[-1] += n
        else:
            chunks.append([unit])
            sizes.append(n)
    if len(chunks) > 1 and sizes[-1] < max_words // 4:
        chunks[-2].extend(chunks.pop())
    # Paragraph-packed pieces keep their blank lines; sentence pieces were joined by spaces.
    return ["\n\n".join(parts) for parts in chunks]


def chunk_document(doc: Document, max_words: int) -> list[Document]:
    """The document itself if short enough, else its pieces (ids derived from their text)."""
    pieces = chunk_text(doc.text, max_words)
    if len(pieces) == 1:
        return [doc]
    return [Document(make_doc_id(doc.source, piece), piece, doc.source, doc.topic,
                     {**doc.meta, "parent_id": doc.doc_id, "chunk": i})
            for i, piece in enumerate(pieces)]
