"""Ambiguous and balanced study sets, and counterfactual pairs."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.bios.data import ambiguous_set, balanced_set, counterfactual_pairs
from ssae_utils.data.documents import make_document

PROF = ("scholar", "performer")


def _docs(counts: dict[tuple[str, str], int]):
    docs = []
    for (prof, gender), n in counts.items():
        pron = "He" if gender == "male" else "She"
        for i in range(n):
            docs.append(make_document(f"{pron} is a {prof} number {i} of {gender} group; {pron.lower()} works.", "t", None,
                                      {"profession": prof, "gender": gender}))
    return docs


SKEWED = {("scholar", "male"): 10, ("scholar", "female"): 2, ("performer", "male"): 4, ("performer", "female"): 2}


def test_ambiguous_set_pairs_profession_with_gender_and_balances_classes():
    amb = ambiguous_set(_docs(SKEWED), PROF, None, seed=0)
    assert (amb.profession == amb.gender).all()                       # gender predicts profession perfectly
    assert (amb.profession == 0).sum() == (amb.profession == 1).sum() == 2   # performer/female: 2 real documents
    card = amb.card()
    assert card["performer/female"] == {"docs": 2, "real": 2, "swapped": 0}
    assert card["scholar/female"]["docs"] == card["performer/male"]["docs"] == 0


def test_the_probe_training_set_never_holds_pronoun_swapped_copies():
    docs = _docs(SKEWED)
    for seed in range(3):
        amb = ambiguous_set(docs, PROF, 50, seed=seed)
        assert not amb.swapped.any() and all(d.meta.get("swapped_from") is None for d in amb.docs)
        assert {d.doc_id for d in amb.docs} <= {d.doc_id for d in docs}
        assert "only 2 available" in amb.notes[0]


def test_balanced_set_has_four_equal_groups_real_documents_first():
    bal = balanced_set(_docs(SKEWED), PROF, None, use_swaps=True, seed=0)
    assert np.bincount(bal.group, minlength=4).tolist() == [6, 6, 6, 6]   # performer capacity 4 + 2
    card = bal.card()
    assert card["scholar/female"] == {"docs": 6, "real": 2, "swapped": 4}
    assert card["scholar/male"] == {"docs": 6, "real": 6, "swapped": 0}
    real_only = balanced_set(_docs(SKEWED), PROF, None, use_swaps=False, seed=0)
    assert len(real_only) == 4 * 2 and not real_only.swapped.any()


def test_requests_beyond_capacity_are_clamped_and_noted_and_tiny_groups_refused():
    bal = balanced_set(_docs(SKEWED), PROF, 50, use_swaps=True, seed=0)
    assert len(bal) == 24 and "only 6 available" in bal.notes[0]
    with pytest.raises(ValueError, match="at least 2 per group"):
        balanced_set(_docs({**SKEWED, ("scholar", "female"): 1}), PROF, None, use_swaps=False, seed=0)


def test_seeds_change_which_documents_are_drawn():
    docs = _docs(SKEWED)
    a, b = (ambiguous_set(docs, PROF, 3, seed=s) for s in (0, 1))
    assert {d.doc_id for d in a.docs} != {d.doc_id for d in b.docs}


def test_counterfactual_pairs_hold_both_gender_versions_of_each_document():
    amb = ambiguous_set(_docs(SKEWED), PROF, 2, seed=0)
    pairs = counterfactual_pairs(amb)
    assert len(pairs.female) == len(amb)
    for female, male in zip(pairs.female, pairs.male):
        assert female.startswith("She") and male.startswith("He")
        assert female.replace("She", "He").replace(" she ", " he ") == male


def test_hard_text_view_drops_the_sentence_naming_the_occupation():
    from ssae_utils.bios.data import hard_text_view, without_first_sentence

    doc = make_document("Marie Curie (1867-1934) was a Polish physicist and chemist. She was the first woman to win "
                        "a Nobel Prize, and she won it twice in two fields.", "t", None,
                        {"profession": "scholar", "gender": "female"})
    cut = without_first_sentence(doc)
    assert cut.text.startswith("She was the first woman") and "physicist" not in cut.text
    assert cut.meta["profession"] == "scholar" and cut.meta["first_sentence_dropped"]
    short = make_document("Ann Lee was a U.S. singer. She sang.", "t", None, {})
    assert without_first_sentence(short) is None and hard_text_view([short, doc]) == [cut]
