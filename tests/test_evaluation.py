import numpy as np
import pytest

from rnnkit import evaluation


def test_point_measures_on_hand_computed_values():
    y, p = [1.0, 2.0, 4.0], [2.0, 2.0, 2.0]
    assert evaluation.mae(y, p) == pytest.approx(1.0)
    assert evaluation.rmse(y, p) == pytest.approx(np.sqrt(5 / 3))
    # |1-2|/3, 0, |4-2|/6 -> mean 2/9 -> 200 * 2/9
    assert evaluation.smape(y, p) == pytest.approx(400 / 9)
    assert evaluation.smape([0.0], [0.0]) == 0.0


def test_mase_scales_by_seasonal_naive_in_sample_error():
    train = [1.0, 5.0, 2.0, 6.0, 3.0, 7.0]  # season 2: diffs 1,1,1,1 -> scale 1
    assert evaluation.seasonal_scale(train, 2) == pytest.approx(1.0)
    assert evaluation.mase([4.0, 8.0], [4.5, 7.0], train, season=2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="MASE is undefined"):
        evaluation.mase([1.0], [1.0], [2.0, 2.0, 2.0], season=1)


def test_seasonal_naive_reaches_back_whole_seasons_before_the_origin():
    history = np.arange(20.0)
    forecast = evaluation.seasonal_naive_forecast(history, origins=[8, 10], horizon=5, season=4)
    # origin 8: steps 8..12 use 4,5,6,7 (one season back) then 4 (two seasons back for 12)
    np.testing.assert_array_equal(forecast[0], [4, 5, 6, 7, 4])
    np.testing.assert_array_equal(forecast[1], [6, 7, 8, 9, 6])
    np.testing.assert_array_equal(evaluation.naive_forecast(history, [8], 3), [[7, 7, 7]])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"expected the shape of y_true \(2,\), got \(3,\)"):
        evaluation.mae([1.0, 2.0], [1.0, 2.0, 3.0])
