import itertools

import pytest

from ssae_utils.data import DataConfig, build_corpora, split_names
from ssae_utils.domains import preset_domains
from ssae_utils.data.corpora import split_hashes
from ssae_utils.data.documents import make_document, text_hash
from ssae_utils.data.sources import SOURCES, get_source, register_source


def _ids(corpora):
    return {name: [d.doc_id for d in docs] for name, docs in corpora.items()}


def test_smoke_corpora_are_deterministic_and_cached(tmp_path, monkeypatch):
    first = build_corpora(DataConfig.smoke())
    assert (first.path / "manifest.json").exists()
    again = build_corpora(DataConfig.smoke())            # read from the cache
    assert _ids(again) == _ids(first) and again.key == first.key
    monkeypatch.setenv("SSAE_CACHE", str(tmp_path / "elsewhere"))
    fresh = build_corpora(DataConfig.smoke())            # rebuilt from nothing
    assert _ids(fresh) == _ids(first)
    assert [d.text for d in fresh["physics_seed"]] == [d.text for d in first["physics_seed"]]


SPLITS = split_names(list(preset_domains("smoke").values()))


def test_every_split_is_present_and_non_empty():
    corpora = build_corpora(DataConfig.smoke())
    assert list(corpora.splits) == list(SPLITS)
    assert "physics_ood_test" in SPLITS and "toxicity_ood_test" not in SPLITS
    assert all(corpora[name] for name in SPLITS)
    with pytest.raises(KeyError, match="general_pool"):
        corpora["nope"]


def test_split_seed_changes_the_split_but_not_the_content():
    a = build_corpora(DataConfig.smoke(split_seed=0))
    b = build_corpora(DataConfig.smoke(split_seed=1))
    assert _ids(a)["physics_seed"] != _ids(b)["physics_seed"]
    union = lambda c: set().union(*split_hashes(c).values())  # noqa: E731
    assert union(a) == union(b)


def test_splits_are_disjoint_and_free_of_duplicates():
    corpora = build_corpora(DataConfig.smoke())
    hashes = split_hashes(corpora)
    for name, docs in corpora.items():
        assert len(hashes[name]) == len(docs), f"duplicate text inside {name}"
    for a, b in itertools.combinations(SPLITS, 2):
        assert not hashes[a] & hashes[b], f"{a} and {b} share text"


def test_known_physics_share_is_in_the_pool_and_no_other_domain_doc_is():
    corpora = build_corpora(DataConfig.smoke())
    physics = get_source("smoke_physics").load()
    known = corpora.known_positives("physics")
    assert len(known) == round(preset_domains("smoke")["physics"].pool_share * len(physics)) > 0
    pool_phys = [d for d in corpora["general_pool"] if d.source == "smoke_physics"]
    assert pool_phys == known                             # only the planted ones
    toxic_in_pool = [d for d in corpora["general_pool"] if d.meta.get("toxic") == 1]
    assert toxic_in_pool == corpora.known_positives("toxicity") != []
    assert all(d.meta["toxic"] == 1 for s in ("toxicity_seed", "toxicity_val", "toxicity_test")
               for d in corpora[s])
    assert not any(d.source == "smoke_bios" for d in corpora["general_pool"])


def test_seed_sizes_follow_the_word_budgets():
    budget = preset_domains("smoke")["physics"].seed_words
    corpora = build_corpora(DataConfig.smoke())
    words = sum(d.n_words for d in corpora["physics_seed"])
    last = corpora["physics_seed"][-1].n_words
    assert budget <= words < budget + last + 1


@pytest.fixture
def dup_source():
    """A general source with exact duplicates, a physics text and an over-long document."""
    physics_text = get_source("smoke_physics").load()[0].text
    long_text = "\n\n".join(f"Paragraph {i} " + "word " * 25 for i in range(10))

    def load(opts):
        return [make_document(t, "dup_general") for t in
                ["same text here", "same text here", physics_text, long_text, "x"]]

    register_source("dup_general", kind="general", description="test")(load)
    yield physics_text
    SOURCES.pop("dup_general")


def test_dedup_exclusion_and_chunking(dup_source):
    cfg = DataConfig.smoke(general_sources=("smoke_general", "dup_general"),
                           general_heldout_share=0.0, min_words=2)
    corpora = build_corpora(cfg)
    pool = corpora["general_pool"]
    dups = [d for d in pool if d.text == "same text here"]
    assert len(dups) == 1
    physics_hash = text_hash(dup_source)
    owners = [n for n, h in split_hashes(corpora).items() if physics_hash in h]
    assert len(owners) == 1                                   # one split owns the text ...
    in_pool = [d for d in pool if text_hash(d.text) == physics_hash]
    assert all(d.source == "smoke_physics" and d.meta.get("known_domain") for d in in_pool)
    assert corpora.pool_removals["physics"] >= 1              # ... and the removal is counted
    assert not any(d.text == "x" for d in pool)               # below min_words
    pieces = [d for d in pool if d.meta.get("parent_id", "").startswith("dup_general:")]
    assert len(pieces) > 1 and all(d.n_words < 1.25 * cfg.max_words for d in pieces)
    assert [d.meta["chunk"] for d in sorted(pieces, key=lambda d: d.meta["chunk"])] == \
        list(range(len(pieces)))


def test_bios_splits_are_stratified_and_labelled():
    corpora = build_corpora(DataConfig.smoke())
    for name in ("bios_train", "bios_test"):
        groups = {(d.meta["profession"], d.meta["gender"]) for d in corpora[name]}
        assert groups == {(p, g) for p in ("scholar", "performer") for g in ("male", "female")}
    assert abs(len(corpora["bios_test"]) - len(corpora["bios_train"])) <= 4
