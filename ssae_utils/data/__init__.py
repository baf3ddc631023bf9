"""The data layer: documents, pinned artifacts, registered sources, splits and the data card.

Typical use::

    from ssae_utils.data import DataConfig, build_corpora, data_card, card_markdown
    corpora = build_corpora(DataConfig.embedded())      # cached under .cache/corpora/<key>/
    seed = corpora["physics_seed"]                      # list[Document]
    print(card_markdown(data_card(corpora)))
"""

from ssae_utils.data.card import card_markdown, data_card
from ssae_utils.data.config import DataConfig
from ssae_utils.data.corpora import Corpora, build_corpora, corpora_key, split_names
from ssae_utils.data.documents import (
    Document,
    decode_bytes,
    document_from_bytes,
    load_jsonl,
    make_doc_id,
    make_document,
    normalize_text,
    save_jsonl,
    text_hash,
    word_count,
)
from ssae_utils.data.sources import SOURCES, Source, get_source, list_sources, register_source

__all__ = [
    "split_names", "SOURCES", "Corpora", "DataConfig", "Document", "Source", "build_corpora",
    "card_markdown", "corpora_key", "data_card", "decode_bytes", "document_from_bytes",
    "get_source", "list_sources", "load_jsonl", "make_doc_id", "make_document",
    "normalize_text", "register_source", "save_jsonl", "text_hash", "word_count",
]
