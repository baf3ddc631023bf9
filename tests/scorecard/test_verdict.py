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
