"""Numba activations shared by the compiled loops: codes, sigmoid and tanh, derivatives.

Activations are passed to the compiled loops as small integer codes, so one compiled loop serves
every activation (numba specialises on argument types, not values). Each derivative is computed
from the activation's *output* ``y``, which is all the forward pass saves.

Every helper works on scalars or on one row, without allocating, so that LLVM inlines it into the
loop over a row and vectorises that loop. Transcendentals use :func:`exp_` (float64) or
:func:`exp32_` (float32), branch-free and call-free (libm's ``exp`` would keep the loops scalar);
:func:`sigmoid_t` and :func:`tanh_t` pick the one matching their argument's precision.

Every function is ``@jit`` (``njit(cache=True, nogil=True)`` and the options below): the machine
code is cached on disk next to this module, so a fresh process loads it instead of compiling
again. (numba's cache does not notice a change in a *called* module: after editing this file,
delete the kernels' ``__pycache__/*.nbi``/``*.nbc`` when working from a source tree.)
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from rnnkit import activations

TANH, SIGMOID, HARD_SIGMOID, RELU, LINEAR = 0, 1, 2, 3, 4
ACTIVATION_CODES = {
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "hard_sigmoid": HARD_SIGMOID,
    "relu": RELU,
    "linear": LINEAR,
}

# error_model="numpy": a float division by zero gives inf/nan instead of raising, which keeps the
# divisions in sigmoid and tanh free of branches (and so vectorised: 6x faster measured).
# "contract" lets LLVM fuse a * b + c into one FMA (one rounding instead of two).
jit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
# For sums over a row (layer norm's mean and variance): "reassoc" lets LLVM vectorise them.
jit_sums = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})


def activation_code(identifier) -> int | None:
    """The kernel code for a Keras activation name (or its rnnkit function), else ``None``."""
    if identifier is None:
        return LINEAR
    if isinstance(identifier, str):
        return ACTIVATION_CODES.get(identifier)
    for name, code in ACTIVATION_CODES.items():
        if activations.get(name) is identifier:
            return code
    return None


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64's bits as a float64 (LLVM ``bitcast``, vectorisable)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


# exp(v) = 2^k * e^r with k = round(v / ln 2) and |r| <= ln(2) / 2: Cody and Waite's reduction
# (ln 2 split in two so that k * LN2_HI is exact), then e^r by its Taylor series to r^12, whose
# remainder is about 2e-16 relative. Written without calls or branches so LLVM vectorises it.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_LIMIT = 708.0  # e^708 is finite in float64; beyond it sigmoid and tanh are saturated anyway
_C = [1.0 / float(np.prod(np.arange(1.0, n + 1.0))) for n in range(13)]
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12 = _C


# Near 0, ``1 - 2 / (1 + e^2x)`` cancels: its relative error grows as 1/|x|, and a gate's small
# value is all of its contribution to the gradients (a layer-norm LSTM with tanh gates drew float32
# gradients 10x further from the float64 truth than torch's). There tanh is its Taylor series to
# x^21, whose first term left out is under 2e-9 relative at 0.625 (float32) and under 1e-17 at 0.25
# (float64); above these the formula loses at most a bit or two.
TANH_SERIES_BELOW = 0.25
# The series' coefficients from x^3 to x^21.
SERIES = (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075,
          -929569 / 638512875, 6404582 / 10854718875, -443861162 / 1856156927625,
          18888466084 / 194896477400625)


@jit
def _tanh_series(x, coefficients):
    """tanh's Taylor series (Horner's scheme) with ``coefficients`` in ``x``'s precision (see
    :data:`TANH_SERIES_BELOW`)."""
    x2 = x * x
    series = coefficients[-1]
    for k in range(len(coefficients) - 2, -1, -1):
        series = coefficients[k] + x2 * series
    return x + x * x2 * series


@jit
def exp_(x):
    """``e^x`` in float64 for finite ``x``, to about 1 ulp, clamped to ``e^±708``."""
    v = min(max(np.float64(x), -EXP_LIMIT), EXP_LIMIT)
    k = np.floor(v * LOG2E + 0.5)
    r = v - k * LN2_HI - k * LN2_LO
    p = C12
    p = p * r + C11
    p = p * r + C10
    p = p * r + C9
    p = p * r + C8
    p = p * r + C7
    p = p * r + C6
    p = p * r + C5
    p = p * r + C4
    p = p * r + C3
    p = p * r + C2
    p = p * r + C1
    p = p * r + C0
    return p * _float64_from_bits((np.int64(k) + 1023) << 52)


@jit
def sigmoid_(x):
    y = 1.0 / (1.0 + exp_(-x))
    return y if x == x else np.float64(x)  # NaN stays NaN


@jit
def tanh_(x):
    x = np.float64(x)
    y = 1.0 - 2.0 / (1.0 + exp_(2.0 * x))
    y = _tanh_series(x, SERIES) if abs(x) < TANH_SERIES_BELOW else y
    return y if x == x else x


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The low 32 bits of an int64 reinterpreted as a float32 (vectorisable)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())

    return types.float32(types.int64), codegen


# The float32 version: the same reduction, e^r to r^7 (remainder about 5e-9, under float32's
# epsilon), and every operation in float32, so that a vector holds twice as many lanes.
F32 = np.float32
LOG2E_32, LN2_HI_32, LN2_LO_32 = F32(LOG2E), F32(0.693359375), F32(-2.12194440e-4)
EXP_LIMIT_32 = F32(87.0)
D0, D1, D2, D3, D4, D5, D6, D7 = (F32(c) for c in _C[:8])
ONE_32, TWO_32, HALF_32 = F32(1.0), F32(2.0), F32(0.5)


@jit
def exp32_(x):
    """``e^x`` in float32 for finite ``x``, to about 1 ulp, clamped to ``e^±87``."""
    v = min(max(x, -EXP_LIMIT_32), EXP_LIMIT_32)
    k = np.floor(v * LOG2E_32 + HALF_32)
    r = v - k * LN2_HI_32 - k * LN2_LO_32
    p = D7
    p = p * r + D6
    p = p * r + D5
    p = p * r + D4
    p = p * r + D3
    p = p * r + D2
    p = p * r + D1
    p = p * r + D0
    return p * _float32_from_bits((np.int64(k) + 127) << 23)


TANH_SERIES_BELOW_32 = F32(0.625)  # see TANH_SERIES_BELOW
SERIES_32 = tuple(F32(c) for c in SERIES)


@jit
def _sigmoid32(x):
    y = ONE_32 / (ONE_32 + exp32_(-x))
    return y if x == x else x


@jit
def _tanh32(x):
    y = ONE_32 - TWO_32 / (ONE_32 + exp32_(TWO_32 * x))
    y = _tanh_series(x, SERIES_32) if abs(x) < TANH_SERIES_BELOW_32 else y
    return y if x == x else x


def sigmoid_t(x):
    """Sigmoid in ``x``'s own precision (float32 math for float32): for the compiled loops."""
    return 1.0 / (1.0 + np.exp(-x))


def tanh_t(x):
    """tanh in ``x``'s own precision (float32 math for float32): for the compiled loops."""
    return np.tanh(x)


@overload(sigmoid_t, jit_options={"error_model": "numpy", "fastmath": {"contract"}})
def _sigmoid_t(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    return lambda x: sigmoid_(x)


@overload(tanh_t, jit_options={"error_model": "numpy", "fastmath": {"contract"}})
def _tanh_t(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: tanh_(x)


@jit
def activate(code, x, out):
    """``out[j] = act(x[j])`` over a row (``out`` may be ``x``); the branch is outside the loop.

    Computed in the row's precision (float32 math for float32 rows)."""
    n = x.shape[0]
    if code == TANH:
        for j in range(n):
            out[j] = tanh_t(x[j])
    elif code == SIGMOID:
        for j in range(n):
            out[j] = sigmoid_t(x[j])
    elif code == HARD_SIGMOID:
        for j in range(n):
            out[j] = min(max(x[j] + 3.0, 0.0), 6.0) / 6.0
    elif code == RELU:
        for j in range(n):
            out[j] = max(x[j], 0.0)
    else:
        for j in range(n):
            out[j] = x[j]


@jit
def act_(code, x):
    """``act(x)`` for one value, in float64; hard_sigmoid is Keras 3's ``relu6(x + 3) / 6``."""
    if code == TANH:
        return tanh_(x)
    if code == SIGMOID:
        return sigmoid_(x)
    if code == HARD_SIGMOID:
        return min(max(np.float64(x) + 3.0, 0.0), 6.0) / 6.0
    if code == RELU:
        return max(np.float64(x), 0.0)
    return np.float64(x)


@jit
def derivative(code, y):
    """``act'(x)`` written in terms of ``y = act(x)``, with torch's choice at the kinks (0)."""
    if code == TANH:
        return 1.0 - y * y
    if code == SIGMOID:
        return (1.0 - y) * y
    if code == HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < y < 1.0 else 0.0
    if code == RELU:
        return 1.0 if y > 0.0 else 0.0
    return 1.0


@jit
def times_derivative(code, y, d):
    """``d[j] *= act'(x[j])`` over a row, from ``y = act(x)``; the branch is outside the loop."""
    n = y.shape[0]
    if code == TANH:
        for j in range(n):
            d[j] *= 1.0 - y[j] * y[j]
    elif code == SIGMOID:
        for j in range(n):
            d[j] *= (1.0 - y[j]) * y[j]
    elif code == HARD_SIGMOID:
        for j in range(n):
            d[j] = d[j] / 6.0 if 0.0 < y[j] < 1.0 else 0.0
    elif code == RELU:
        for j in range(n):
            d[j] = d[j] if y[j] > 0.0 else 0.0
