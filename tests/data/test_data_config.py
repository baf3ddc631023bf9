import json

import pytest

from ssae_utils.data import DataConfig


@pytest.mark.parametrize("preset", [DataConfig.smoke, DataConfig.embedded, DataConfig.paper])
def test_presets_roundtrip_through_json(preset):
    cfg = preset()
    again = DataConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.to_dict() == cfg.to_dict()


def test_presets_differ_where_they_should():
    assert DataConfig.smoke().general_sources == ("smoke_general",)
    assert DataConfig.paper().general_sources == ("openwebtext",)


@pytest.mark.parametrize("field,value", [("general_heldout_share", 1.0), ("bios_test_share", -0.1),
                                         ("min_words", -1), ("general_max_words", 0),
                                         ("max_words", 1)])
def test_invalid_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        DataConfig.smoke(**{field: value})


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown DataConfig field"):
        DataConfig.from_dict({**DataConfig.smoke().to_dict(), "colour": 1})
