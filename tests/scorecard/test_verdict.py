import pytest

from ssae_utils.scorecard.verdict import combine, judge, se_of_difference


@pytest.mark.parametrize("gap,se,expected,verdict", [
    (-0.3, 0.1, "negative", "reproduced"),
    (-0.1, 0.1, "negative", "inconclusive"),
    (0.3, 0.1, "negative", "not reproduced"),
    (0.3, 0.1, "positive", "reproduced"),
    (-0.3, None, "negative", "inconclusive"),   # no noise estimate: no verdict
    (None, 0.1, "negative", "inconclusive"),
    (-0.3, 0.0, "negative", "inconclusive"),
])
def test_judge(gap, se, expected, verdict):
    assert judge(gap, se, expected) == verdict


def test_combine_and_standard_error():
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert combine(["not reproduced", "inconclusive"]) == "not reproduced"
    assert combine(["not reproduced", "reproduced"]) == "inconclusive"
    assert combine([]) == "inconclusive"
    assert se_of_difference(0.1, 1, 1) == pytest.approx(0.1 * 2 ** 0.5)
    assert se_of_difference(0.1, 3, 3) == pytest.approx(0.1 * (2 / 3) ** 0.5)
    assert se_of_difference(None, 1, 1) is None


def test_a_smallest_effect_of_interest_turns_a_tight_null_into_not_reproduced():
    # the claimed gain is 0.125; we measure 0.0 +- 0.005: far too small to be it
    assert judge(0.0, 0.005, "positive") == "inconclusive"
    assert judge(0.0, 0.005, "positive", min_effect=0.03) == "not reproduced"
    assert judge(0.02, 0.02, "positive", min_effect=0.03) == "inconclusive"     # band reaches 0.06
    assert judge(0.10, 0.01, "positive", min_effect=0.03) == "reproduced"
