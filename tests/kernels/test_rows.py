"""The row building blocks of the compiled loops (``rnnkit.kernels._rows``) against NumPy."""

import numpy as np
import pytest

from rnnkit.kernels._rows import (
    layer_norm_row,
    layer_norm_row_backward,
    layer_norm_rows_backward,
    row_moments,
    weight_gradients_into,
)

# (offset, spread): rows far from zero against their spread are where a one-pass variance
# cancels; an outlier first value is where the shift it sums about is worst.
ROWS = [(0.0, 1.0), (1e4, 1.0), (-3e3, 1e-2), (50.0, 1e3)]


def _row(dtype, size, offset, spread, outlier=False):
    rng = np.random.default_rng(size)
    row = (offset + spread * rng.standard_normal(size)).astype(dtype)
    if outlier and size > 1:
        row[0] = offset + 1e3 * spread
    return row


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 3, 32, 129])
@pytest.mark.parametrize(("offset", "spread"), ROWS)
@pytest.mark.parametrize("outlier", [False, True])
def test_row_moments_match_numpy_in_float64(dtype, size, offset, spread, outlier):
    row = _row(dtype, size, offset, spread, outlier)
    exact = row.astype(np.float64)
    shift, mean, var = row_moments(row)
    # float32 rows: each deviation from the first value is rounded to float32 once
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert shift == row[0]
    assert shift + mean == pytest.approx(exact.mean(), rel=1e-12, abs=rtol * exact.std())
    assert var == pytest.approx(exact.var(), rel=rtol, abs=1e-300)
    assert var >= 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("offset", "spread"), ROWS)
@pytest.mark.parametrize("outlier", [False, True])
def test_layer_norm_row_normalises_rows_far_from_zero(dtype, offset, spread, outlier):
    row = _row(dtype, 128, offset, spread, outlier)
    out = np.empty_like(row)
    rstd = layer_norm_row(row, 1e-5 * spread**2, out)
    exact = row.astype(np.float64)
    expected = (exact - exact.mean()) / np.sqrt(exact.var() + 1e-5 * spread**2)
    # float32: each value is centred about the first one, then about the deviations' mean.
    # float64: both sides round at about 1e-16 of the offset (the reference's mean) and of the
    # deviations from the first value (rnnkit's), in units of the row's spread; with an outlier
    # first value the one-pass variance also loses a few digits to cancellation (relative).
    reach = (abs(offset) + np.abs(exact - exact[0]).max()) / exact.std()
    if dtype == np.float32:
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-14 * (1.0 + reach))
    assert rstd * spread == pytest.approx(spread / np.sqrt(exact.var() + 1e-5 * spread**2),
                                          rel=1e-6)
    assert out.dtype == dtype


def _layer_norm_backward_in_float64(d_y, x_hat, rstd, weight):
    g = d_y * weight
    d_x = rstd * (g - g.mean() - x_hat * (g * x_hat).mean())
    return d_x, d_y * x_hat, d_y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 3, 32, 64, 129, 256])
@pytest.mark.parametrize("in_place", [False, True])
def test_layer_norm_row_backward_matches_float64(dtype, size, in_place):
    rng = np.random.default_rng(size)
    x_hat, d_y, weight = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    rstd = dtype(0.7)
    d_weight, d_bias = np.full(size, 0.5, dtype), np.full(size, -0.25, dtype)
    d_x = d_y.copy() if in_place else np.empty_like(d_y)
    expected = _layer_norm_backward_in_float64(*(a.astype(np.float64) for a in (d_y, x_hat)),
                                               0.7, weight.astype(np.float64))
    layer_norm_row_backward(d_x if in_place else d_y, x_hat, rstd, weight, d_x, d_weight, d_bias)
    atol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(d_x, expected[0], rtol=0, atol=atol * 10)
    np.testing.assert_allclose(d_weight, 0.5 + expected[1], rtol=0, atol=atol)
    np.testing.assert_allclose(d_bias, -0.25 + expected[2], rtol=0, atol=atol)
    assert d_x.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, width", [(1, 32), (5, 64), (32, 129)])
@pytest.mark.parametrize("in_place", [False, True])
def test_layer_norm_rows_backward_matches_float64_row_by_row(dtype, rows, width, in_place):
    """A block of rows, each with its own ``1 / std``: the parameters' gradients sum over the
    rows."""
    rng = np.random.default_rng(rows * width)
    x_hat, d_y = (rng.standard_normal((rows, width)).astype(dtype) for _ in range(2))
    weight = rng.standard_normal(width).astype(dtype)
    rstd = rng.uniform(0.5, 2.0, rows).astype(dtype)
    d_weight, d_bias = np.full(width, 0.5, dtype), np.full(width, -0.25, dtype)
    d_x = d_y.copy() if in_place else np.empty_like(d_y)
    per_row = [_layer_norm_backward_in_float64(d_y[n].astype(np.float64),
                                               x_hat[n].astype(np.float64), float(rstd[n]),
                                               weight.astype(np.float64)) for n in range(rows)]
    layer_norm_rows_backward(d_x if in_place else d_y, x_hat, rstd, weight, d_x, d_weight, d_bias)
    atol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(d_x, np.stack([r[0] for r in per_row]), rtol=0, atol=atol * 20)
    np.testing.assert_allclose(d_weight, 0.5 + sum(r[1] for r in per_row), rtol=0,
                               atol=atol * 10 * rows)
    np.testing.assert_allclose(d_bias, -0.25 + sum(r[2] for r in per_row), rtol=0,
                               atol=atol * 10 * rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("at_once", [True, False], ids=["one-gemm", "two-gemms"])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("rows", [3200, 40])
def test_weight_gradients_into_one_gemm_or_two(dtype, at_once, accumulate, rows):
    """Work arrays with columns ask for one GEMM over ``[x | h]`` (where GEMMs run whole),
    without columns for two; both give ``d^T x`` and ``d^T h``. Work arrays of another number
    of rows are replaced."""
    rng = np.random.default_rng(rows)
    gates, features, rec = 256, 32, 64
    d = rng.standard_normal((rows, gates)).astype(dtype)
    x, h = (rng.standard_normal((rows, n)).astype(dtype) for n in (features, rec))
    start_ih, start_hh = (rng.standard_normal((gates, n)).astype(dtype) for n in (features, rec))
    d_ih, d_hh = start_ih.copy(), start_hh.copy()
    width = features + rec if at_once else 0
    work_rows = (rows if rows > 100 else 7) if at_once else 0  # 7: replaced by a fresh array
    both, result = np.empty((work_rows, width), dtype), np.empty((gates * at_once, width), dtype)
    weight_gradients_into(d, x, h, True, True, both, result, d_ih, d_hh, accumulate)
    d64 = d.astype(np.float64)
    tolerance = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(d_ih, d64.T @ x + (start_ih if accumulate else 0), **tolerance)
    np.testing.assert_allclose(d_hh, d64.T @ h + (start_hh if accumulate else 0), **tolerance)
