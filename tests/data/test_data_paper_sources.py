"""The paper-profile loaders on small local files with the real datasets' columns (offline)."""

import dataclasses

import pytest

from ssae_utils.data import DataConfig, build_corpora
from ssae_utils.data.sources import get_source
from ssae_utils.domains import preset_domains
from ssae_utils.paths import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "paper"


def paper_config(**overrides):
    options = {
        "openwebtext": {"path": str(FIXTURES / "openwebtext.jsonl")},
        "arxiv_physics": {"path": str(FIXTURES / "arxiv_physics.jsonl")},
        "physics_instruct": {"path": str(FIXTURES / "physics_instruct.jsonl")},
        "pile_toxicity": {"path": str(FIXTURES / "pile_toxicity.jsonl")},
        "bias_in_bios": {"path": str(FIXTURES / "bias_in_bios")},
    }
    small = dict(max_words=120, general_heldout_share=0.2, source_options=options)
    return DataConfig.paper(**{**small, **overrides})


def paper_domains():
    domains = preset_domains("paper")
    domains["physics"] = dataclasses.replace(domains["physics"], seed_words=20, val_words=20, test_words=None, ood_words=None)
    domains["toxicity"] = dataclasses.replace(domains["toxicity"], seed_words=10, val_words=10, test_words=None)
    return domains


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # Belt and braces: the fixtures are local files, and the hub must never be asked.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_paper_corpora_build_from_fixtures():
    cfg = paper_config()
    corpora = build_corpora(cfg, paper_domains())
    assert len(corpora["general_pool"]) + len(corpora["general_heldout"]) == 11  # 12 rows, 1 dup
    assert {d.source for d in corpora["general_pool"]} == {"openwebtext"}   # nothing planted
    physics = [d for s in ("physics_seed", "physics_val", "physics_test") for d in corpora[s]]
    assert len({d.meta.get("parent_id", d.doc_id) for d in physics}) == 9
    assert any("parent_id" in d.meta for d in physics)                      # the long paper
    assert all(d.meta["toxic"] == 1 and d.meta["score"] >= 0.5
               for s in ("toxicity_seed", "toxicity_val", "toxicity_test") for d in corpora[s])
    assert sum(len(corpora[s]) for s in ("toxicity_seed", "toxicity_val", "toxicity_test")) == 6
    # inputs are keyed by file content: the cache key records each fixture's digest
    assert any(k.startswith("file:") for k in corpora.inputs)


def test_bias_in_bios_keeps_professor_and_nurse_and_the_dataset_split():
    docs = get_source("bias_in_bios").load({"path": str(FIXTURES / "bias_in_bios")})
    assert {d.meta["profession"] for d in docs} == {"professor", "nurse"}
    assert len(docs) == 12                                     # 8 train + 4 test rows kept
    corpora = build_corpora(paper_config(), paper_domains())
    assert {d.meta["split"] for d in corpora["bios_train"]} == {"train"}
    assert {d.meta["split"] for d in corpora["bios_test"]} == {"test"}
    first = next(d for d in corpora["bios_train"] if d.text.startswith("He is a professor of physics"))
    assert (first.meta["profession"], first.meta["gender"]) == ("professor", "male")


def test_instruction_pairs_are_concatenated_and_thresholds_apply():
    docs = get_source("physics_instruct").load({"path": str(FIXTURES / "physics_instruct.jsonl")})
    assert len(docs) == 4 and "\n\n" in docs[0].text and docs[0].text.endswith("splitting.")
    strict = get_source("pile_toxicity").load({"path": str(FIXTURES / "pile_toxicity.jsonl"),
                                               "toxic_threshold": 0.9})
    assert sum(d.meta["toxic"] for d in strict) == 4
    assert {d.meta["pile_set_name"] for d in strict} == {"Pile-CC"}


def test_wrong_column_and_missing_file_errors_are_clear():
    with pytest.raises(KeyError, match=r"no column\(s\) \['body'\].*it has \['id', 'text'\]"):
        get_source("arxiv_physics").load({"path": str(FIXTURES / "arxiv_physics.jsonl"),
                                          "text_columns": ["body"]})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_source("openwebtext").load({"path": str(FIXTURES / "missing.jsonl")})
    with pytest.raises(FileNotFoundError, match="no file for split 'validation'"):
        get_source("bias_in_bios").load({"path": str(FIXTURES / "bias_in_bios"),
                                         "splits": ["validation"]})


def test_max_rows_caps_a_source():
    docs = get_source("openwebtext").load({"path": str(FIXTURES / "openwebtext.jsonl"),
                                           "max_rows": 3})
    assert len(docs) == 3
