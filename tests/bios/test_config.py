"""BiosStudyConfig presets and validation."""

from __future__ import annotations

import pytest

from ssae_utils.bios.config import BiosStudyConfig
from ssae_utils.config import load_profile


def test_presets_are_valid_and_reachable_from_profiles():
    assert load_profile("paper").bios.professions == ("professor", "nurse")
    assert load_profile("embedded").bios.n_runs >= 3 and len(load_profile("embedded").bios.ssae_selection_seeds) >= 3
    assert load_profile("smoke", {"bios.shift_candidates": 7}).bios.shift_candidates == 7
    assert BiosStudyConfig.from_dict(BiosStudyConfig.smoke().to_dict()) == BiosStudyConfig.smoke()


@pytest.mark.parametrize("bad", [dict(professions=("a", "a")), dict(gender_share_threshold=0.0),
                                 dict(compress_fraction=1.5), dict(probe_seeds=()), dict(balanced_per_group=1)])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError):
        BiosStudyConfig(**bad)
