"""The compiled loops' own sigmoid and tanh, against NumPy's in float64, in units in the last place.

The kernels cannot call libm (it keeps their loops scalar), so they carry their own
transcendentals; these must be as accurate as the float32 results torch computes, near 0 too,
where a gate's small value is the whole of its contribution to the gradients.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from rnnkit.kernels._numba import sigmoid_t, tanh_t

# torch's float32 tanh and sigmoid are within about 1.5 ulp; allow a little more. (Measured:
# float32 2.6 ulp, float64 6 ulp, against NumPy's float64, itself within an ulp or so.) Before
# tanh was computed from e^2x - 1, it was 2e7 float32 ulp off near 4e-8 (returning 0).
MAX_ULP = {np.float32: 4.0, np.float64: 8.0}


@numba.njit
def _tanh_all(x, out):
    for i in range(x.size):
        out[i] = tanh_t(x[i])


@numba.njit
def _sigmoid_all(x, out):
    for i in range(x.size):
        out[i] = sigmoid_t(x[i])


FUNCTIONS = {
    "tanh": (_tanh_all, np.tanh),
    "sigmoid": (_sigmoid_all, lambda x: 1 / (1 + np.exp(-x))),
}


def _points(dtype) -> np.ndarray:
    """Both signs, from 1e-12 to 30 in log steps, and a fine grid over [-4, 4]."""
    magnitudes = np.logspace(-12, np.log10(30.0), 4001)
    return np.concatenate([magnitudes, -magnitudes, np.linspace(-4, 4, 80001)]).astype(dtype)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_within_a_few_ulp_of_float64_numpy(name, dtype):
    compiled, exact = FUNCTIONS[name]
    x = _points(dtype)
    result = np.empty_like(x)
    compiled(x, result)
    truth = exact(x.astype(np.float64))
    if dtype == np.float32:
        spacing = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
    else:  # numpy's float64 result is itself within an ulp: compare in float64 ulps
        spacing = np.spacing(np.abs(truth))
    ulp = np.abs(result.astype(np.float64) - truth) / spacing
    worst = int(np.argmax(ulp))
    assert ulp[worst] <= MAX_ULP[dtype], f"{name}({x[worst]!r}) is {ulp[worst]:.1f} ulp off"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_nan_stays_nan_and_infinities_saturate(name):
    compiled, _ = FUNCTIONS[name]
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    result = np.empty_like(x)
    compiled(x, result)
    low = -1.0 if name == "tanh" else 0.0  # sigmoid's exp is clamped: e^-87, not 0
    assert np.isnan(result[0]) and result[1] == 1.0 and abs(result[2] - low) < 1e-30
