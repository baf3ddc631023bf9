"""TailConfig validation and that each profile carries its own preset."""

from __future__ import annotations

import pytest

from ssae_utils.analysis.config import TailConfig
from ssae_utils.config import load_profile


def test_each_profile_uses_its_tail_preset_and_overrides_apply():
    for name, preset in (("smoke", TailConfig.smoke()), ("embedded", TailConfig.embedded()), ("paper", TailConfig.paper())):
        assert load_profile(name).tail == preset, name
    assert load_profile("embedded", {"tail.target_l0": 95}).tail.target_l0 == 95.0


@pytest.mark.parametrize("bad", [{"target_l0": 0}, {"top_k": 0}, {"vocab_chunk": 5, "top_k": 10}, {"bucket_base": 1.0},
                                 {"count_tokens": 0}, {"tail_max_count": 0}])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError, match="tail"):
        TailConfig(**bad)


def test_the_domain_must_be_one_of_the_profiles():
    from ssae_utils.config import load_profile

    with pytest.raises(ValueError, match="tail.domain='bios' is not one of the profile's domains"):
        load_profile("smoke", {"tail.domain": "bios"})
    assert load_profile("smoke", {"tail.domain": "toxicity"}).tail.domain == "toxicity"
