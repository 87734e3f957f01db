"""The row building blocks of the compiled loops (``rnnkit.kernels._rows``) against NumPy."""

import numpy as np
import pytest

from rnnkit.kernels._rows import layer_norm_row, row_moments

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
    mean, var = row_moments(row)
    # float32 rows: each deviation from the first value is rounded to float32 once
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert mean == pytest.approx(exact.mean(), rel=1e-12, abs=rtol * exact.std())
    assert var == pytest.approx(exact.var(), rel=rtol, abs=1e-300)
    assert var >= 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_row_normalises_a_row_far_from_zero(dtype):
    row = _row(dtype, 128, 1e4, 1.0)
    out = np.empty_like(row)
    rstd = layer_norm_row(row, 1e-5, out)
    exact = row.astype(np.float64)
    expected = (exact - exact.mean()) / np.sqrt(exact.var() + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    assert rstd == pytest.approx(1.0 / np.sqrt(exact.var() + 1e-5), rel=1e-6)
