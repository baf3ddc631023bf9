"""AUC of Pareto curves on hand-made curves."""

from __future__ import annotations

import pytest

from ssae_utils.sae.pareto import compare_auc, curve_auc, mean_over_seeds


def test_flat_and_linear_curves():
    flat = curve_auc([0, 50, 200], [2.0, 2.0, 2.0], (60, 140))
    assert flat.auc == pytest.approx(160.0) and flat.mean_y == pytest.approx(2.0) and flat.coverage == 1.0
    assert flat.warning is None
    # y = L0 / 10 over [60, 140]: integral = (140^2 - 60^2) / 20 = 800
    line = curve_auc([20, 100, 180], [2.0, 10.0, 18.0], (60, 140))
    assert line.auc == pytest.approx(800.0)
    # points given in any order; the ends are interpolated
    assert curve_auc([180, 20, 100], [18.0, 2.0, 10.0], (60, 140)).auc == pytest.approx(800.0)


def test_piecewise_curve_by_hand():
    # (60, 4) -> (100, 2) -> (140, 3): 40*(4+2)/2 + 40*(2+3)/2 = 120 + 100
    assert curve_auc([60, 100, 140], [4, 2, 3]).auc == pytest.approx(220.0)


def test_lower_curve_has_lower_auc():
    better = curve_auc([40, 90, 160], [1.1, 1.0, 0.95])
    worse = curve_auc([40, 90, 160], [1.3, 1.2, 1.1])
    assert better.auc < worse.auc


def test_partial_and_missing_coverage_warn():
    part = curve_auc([100, 160], [1.0, 1.0], (60, 140))
    assert part.coverage == pytest.approx(0.5) and part.auc == pytest.approx(40.0)
    assert "covers L0 [100.0, 140.0]" in part.warning
    miss = curve_auc([200, 300], [1.0, 1.0], (60, 140))
    assert miss.auc is None and "does not overlap" in miss.warning and "lambda grid" in miss.warning
    assert curve_auc([100], [1.0]).auc is None                    # one point has no area


def test_duplicate_l0_values_are_averaged_and_bad_values_refused():
    assert curve_auc([60, 60, 140], [1.0, 3.0, 2.0]).auc == pytest.approx(80 * 2.0)
    with pytest.raises(ValueError, match="NaN"):
        curve_auc([60, 140], [1.0, float("nan")])
    with pytest.raises(ValueError, match="lo < hi"):
        curve_auc([60, 140], [1.0, 1.0], (140, 60))


def test_compare_uses_the_common_window():
    curves = {"a": ([60, 140], [1.0, 1.0]), "b": ([80, 120], [2.0, 2.0]), "c": ([300, 400], [0.0, 0.0])}
    out = compare_auc(curves, (60, 140))
    assert out["common"] == [80.0, 120.0]
    assert out["auc"]["a"]["auc"] == pytest.approx(40.0) and out["auc"]["b"]["auc"] == pytest.approx(80.0)
    assert "c" not in out["auc"] and any(w.startswith("c:") for w in out["warnings"])
    assert any("common L0 range" in w for w in out["warnings"])


def test_mean_over_seeds():
    rows = [{"s": "dense", "lam": 1, "l0": 100, "ppl": 10.0}, {"s": "dense", "lam": 1, "l0": 110, "ppl": 12.0},
            {"s": "bm25", "lam": 1, "l0": 90, "ppl": float("nan")}]
    out = {r["s"]: r for r in mean_over_seeds(rows, ["s", "lam"], ["l0", "ppl"])}
    assert out["dense"]["n"] == 2 and out["dense"]["ppl"] == 11.0 and out["dense"]["ppl_std"] == 1.0
    assert out["bm25"]["ppl"] is None and out["bm25"]["ppl_missing"] == 1
