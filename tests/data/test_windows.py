"""make_windows: shapes and values on hand-checked series, and its errors."""

import numpy as np
import pandas as pd
import pytest

from rnnkit.data import make_windows


def test_univariate_values_and_shapes():
    X, y = make_windows(np.arange(7.0), window=3, horizon=2)
    assert X.shape == (3, 3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(y, [[3, 4], [4, 5], [5, 6]])


def test_stride_skips_window_starts():
    X, y = make_windows(np.arange(8.0), window=3, horizon=1, stride=2)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(y, [[3], [5], [7]])


def test_stride_drops_an_incomplete_last_window():
    X, y = make_windows(np.arange(9.0), window=3, horizon=1, stride=2)
    assert len(X) == 3  # (9 - 4) // 2 + 1; a window starting at 6 would need step 9
    np.testing.assert_array_equal(y[:, 0], [3, 5, 7])


def test_multivariate_keeps_the_feature_axis():
    series = np.stack([np.arange(6.0), 10 * np.arange(6.0)], axis=1)  # (6, 2)
    X, y = make_windows(series, window=2, horizon=2)
    assert X.shape == (3, 2, 2) and y.shape == (3, 2, 2)
    np.testing.assert_array_equal(X[1], [[1, 10], [2, 20]])
    np.testing.assert_array_equal(y[1], [[3, 30], [4, 40]])


def test_series_of_exactly_window_plus_horizon_gives_one_sample():
    X, y = make_windows([1.0, 2.0, 3.0], window=2, horizon=1)
    np.testing.assert_array_equal(X, [[[1.0], [2.0]]])
    np.testing.assert_array_equal(y, [[3.0]])


def test_dtypes_pandas_input_and_independent_copies():
    series = np.arange(5, dtype=np.float32)
    X, y = make_windows(series, window=2)
    assert X.dtype == np.float32 and y.dtype == np.float32
    X[0, 0, 0] = 99.0
    assert series[0] == 0.0 and X.flags.c_contiguous and y.flags.c_contiguous
    X_int, _ = make_windows(np.arange(5), window=2)
    assert X_int.dtype == np.float64
    X_pd, y_pd = make_windows(pd.Series([1.0, 2.0, 3.0, 4.0]), window=2)
    np.testing.assert_array_equal(y_pd, [[3.0], [4.0]])


def test_too_short_series_names_length_window_and_horizon():
    with pytest.raises(ValueError, match=r"window \+ horizon = 3 \+ 2 = 5 .*length 4"):
        make_windows(np.arange(4.0), window=3, horizon=2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_with_their_position(bad):
    with pytest.raises(ValueError, match=r"series: expected finite values.* at index 2"):
        make_windows([0.0, 1.0, bad, 3.0, 4.0], window=2)


@pytest.mark.parametrize(
    "series", [["a", "b", "c", "d"], np.array([1, "x", 2, 3], dtype=object), [True, False] * 3]
)
def test_non_numeric_values_raise_type_error(series):
    with pytest.raises(TypeError, match="series: expected numeric"):
        make_windows(series, window=2)


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match=r"series: expected a 1-D .* got shape \(2, 3, 4\)"):
        make_windows(np.zeros((2, 3, 4)), window=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"window": 0}, ValueError, "window: expected an int >= 1, got 0"),
        ({"window": 2.0}, TypeError, "window: expected an int >= 1, got float"),
        ({"window": 2, "horizon": -1}, ValueError, "horizon: expected an int >= 1, got -1"),
        ({"window": 2, "stride": True}, TypeError, "stride: expected an int >= 1, got bool"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_windows(np.arange(10.0), **kwargs)
