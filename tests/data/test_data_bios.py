from ssae_utils.data.bios import (
    balance_with_pronoun_swaps,
    gender_from_pronouns,
    looks_like_person,
    profession_from_description,
    pronoun_swap,
)
from ssae_utils.data.documents import make_document


def test_gender_from_pronouns():
    assert gender_from_pronouns("She won. Her prize was large; he clapped.") == "female"
    assert gender_from_pronouns("He wrote his books himself.") == "male"
    assert gender_from_pronouns("He met her. She met him.") is None
    assert gender_from_pronouns("The star is bright.") is None


def test_profession_and_person_rules():
    assert profession_from_description("Polish-French physicist and chemist (1867–1934)") == "scholar"
    assert profession_from_description("American actress (born 1949)") == "performer"
    assert profession_from_description("Mathematical model of the physical space") is None
    assert profession_from_description("English actor and physicist") is None  # ambiguous
    assert looks_like_person(None, "Russian mathematician (1850–1891)")
    assert not looks_like_person("Physical sciences", "Unit of length")


def test_pronoun_swap_keeps_case_and_handles_her():
    assert pronoun_swap("He said his wife met him.") == "She said her husband met her."
    assert pronoun_swap("She lost her book and found her.") == "He lost his book and found him."
    assert pronoun_swap("HE is an actress") == "SHE is an actor"


def test_balance_fills_small_groups_with_swapped_copies():
    docs = [make_document(f"He is scholar {i}.", "b", meta={"profession": "scholar", "gender": "male"})
            for i in range(3)]
    docs += [make_document("She is a singer.", "b", meta={"profession": "performer", "gender": "female"})]
    out = balance_with_pronoun_swaps(docs)
    female_scholars = [d for d in out if d.meta["profession"] == "scholar" and d.meta["gender"] == "female"]
    assert len(female_scholars) == 3
    assert all(d.text.startswith("She is scholar") and d.meta["swapped_from"] for d in female_scholars)
    assert out[:4] == docs
