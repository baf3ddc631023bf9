"""The leaf comparison the fault tests use: timings are left out, everything else must match."""

from tests.compare import leaf_differences


def test_timings_are_ignored_and_every_other_leaf_is_compared():
    a = {"x": 1, "timings": {"a_s": 2}, "y": [1.0, {"z_per_s": 3, "w": 2}], "n": float("nan")}
    b = {"x": 1, "timings": {"a_s": 9}, "y": [1.0, {"z_per_s": 4, "w": 2}], "n": float("nan")}
    assert leaf_differences(a, b) == []
    b["y"][1]["w"] = 3
    assert leaf_differences(a, b) == ["y[1].w: 2 != 3"]
    assert leaf_differences({"x": 1}, {"x": 1.0}) == ["x: 1 != 1.0"]          # a type change is a difference
    assert leaf_differences({"x": 1}, {}) == ["x: 1 != '<missing>'"]
    assert leaf_differences({"l": [1, 2]}, {"l": [1]}) == ["l[1]: 2 != '<missing>'"]
