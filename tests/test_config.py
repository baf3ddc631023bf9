from __future__ import annotations

import pytest

from ssae_utils.config import PROFILES, apply_override, load_profile, parse_override


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_builds_and_hashes_stably(name):
    a, b = load_profile(name), load_profile(name)
    assert a.name == name
    assert a.hash() == b.hash()
    assert a.model.hook_layer >= 0


def test_embedded_and_paper_hook_layer_12():
    assert load_profile("embedded").model.hook_name == "blocks.12.hook_resid_post"
    assert load_profile("paper").model.hook_name == "blocks.12.hook_resid_post"
    assert load_profile("paper").gsae.pretrained_release == "gemma-2b-res-jb"


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="smoke, embedded, paper"):
        load_profile("tiny")


def test_overrides_are_typed_and_validated():
    cfg = load_profile("smoke", {"gsae.d_sae": "256", "model.context_length": 16, "gsae.outlier_norm_factor": None})
    assert cfg.gsae.d_sae == 256 and cfg.model.context_length == 16 and cfg.gsae.outlier_norm_factor is None
    assert cfg.hash() != load_profile("smoke").hash()
    with pytest.raises(KeyError, match="Valid knobs: .*d_sae"):
        load_profile("smoke", {"gsae.width": 3})
    with pytest.raises(KeyError, match="Valid knobs"):
        load_profile("smoke", {"nonsense.d_sae": 3})
    with pytest.raises(ValueError, match="integer"):
        load_profile("smoke", {"gsae.d_sae": 2.5})
    with pytest.raises(ValueError, match="must be >= 2"):
        load_profile("smoke", {"model.context_length": 1})
    with pytest.raises(ValueError, match="one of"):
        load_profile("smoke", {"activations.dtype": "int8"})
    with pytest.raises(KeyError, match="is a section"):
        apply_override(load_profile("smoke"), "gsae", 3)


def test_parse_override_from_command_line():
    assert parse_override("gsae.d_sae=2048") == ("gsae.d_sae", 2048)
    assert parse_override("gsae.pretrained_release=gemma-2b-res-jb") == ("gsae.pretrained_release", "gemma-2b-res-jb")
    assert parse_override("gsae.outlier_norm_factor=null") == ("gsae.outlier_norm_factor", None)
    with pytest.raises(ValueError, match="section.field=value"):
        parse_override("gsae.d_sae")


def test_every_section_has_one_preset_per_profile():
    from ssae_utils.config import PROFILES, SECTIONS

    for profile in PROFILES:
        cfg = load_profile(profile)
        for section, cls in SECTIONS.items():
            preset = getattr(cls, profile)
            assert getattr(cfg, section) == preset(), (profile, section)
