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
again. Every kernel's cache carries one stamp of all of this package's sources
(:mod:`rnnkit.kernels._cache`): an edit to any of them has each kernel compiled again on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from rnnkit import activations
from rnnkit.kernels import _cache

# The OpenBLAS cores with a small-matrix GEMM kernel: SkylakeX's, which Cooperlake and
# SapphireRapids reuse. OpenBLAS picks one of them on CPUs with AVX-512 (Intel's, and AMD's from
# Zen 4, such as this project's benchmark host).
SMALL_GEMM_CORES = ("skylakex", "cooperlake", "sapphirerapids")
_AVX512 = ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")


def blas_small_gemm() -> bool:
    """Whether scipy's OpenBLAS, which numba's ``np.dot`` calls, runs small GEMMs through its
    small-matrix kernel (see :mod:`rnnkit.kernels._blas`): on a CPU with AVX-512, unless
    ``OPENBLAS_CORETYPE`` names a core without that kernel. Read from the CPU's features, not
    asked of OpenBLAS, whose handle comes from importing ``scipy.linalg`` (about 100 ms).

    ``RNNKIT_BLAS_SMALL_GEMM=1`` or ``0`` overrides it: for a BLAS the check misjudges, and for
    the test suite, which runs the pieces' code on every machine.
    """
    override = os.environ.get("RNNKIT_BLAS_SMALL_GEMM")
    if override is not None:
        if override not in ("0", "1"):
            raise ValueError(f"RNNKIT_BLAS_SMALL_GEMM must be '0' or '1', got {override!r}")
        return override == "1"
    forced = os.environ.get("OPENBLAS_CORETYPE", "").strip().lower()
    if forced:
        return forced in SMALL_GEMM_CORES
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # a host LLVM cannot describe
        return False
    return all(features.get(name, False) for name in _AVX512)


# Compiled into the kernels (see rnnkit.kernels._blas), so the caches' stamp includes it. Shared
# before the first @jit below: numba picks a function's cache locator when it is decorated.
BLAS_SMALL_GEMM = blas_small_gemm()
_cache.share_stamp(Path(__file__).parent, facts=(("blas_small_gemm", BLAS_SMALL_GEMM),))

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


@jit
def _reduced(x):
    """``(e^r - 1, 2^k)`` with ``x = k ln 2 + r`` (``x`` clamped to ``±708``): ``e^x`` is their
    ``2^k (e^r - 1 + 1)``, and ``e^x - 1`` is ``2^k (e^r - 1) + (2^k - 1)``, which does not cancel
    near 0 (the series gives ``e^r - 1`` without its constant term)."""
    v = min(max(np.float64(x), -EXP_LIMIT), EXP_LIMIT)
    k = np.floor(v * LOG2E + 0.5)
    r = v - k * LN2_HI - k * LN2_LO
    q = C12
    q = q * r + C11
    q = q * r + C10
    q = q * r + C9
    q = q * r + C8
    q = q * r + C7
    q = q * r + C6
    q = q * r + C5
    q = q * r + C4
    q = q * r + C3
    q = q * r + C2
    q = q * r + C1
    return q * r, _float64_from_bits((np.int64(k) + 1023) << 52)


@jit
def exp_(x):
    """``e^x`` in float64 for finite ``x``, to about 1 ulp, clamped to ``e^±708``."""
    e_r_minus_1, scale = _reduced(x)
    return scale * (e_r_minus_1 + C0)


@jit
def expm1_(x):
    """``e^x - 1`` in float64, to a few ulp near 0 too (where ``exp_(x) - 1`` cancels)."""
    e_r_minus_1, scale = _reduced(x)
    return scale * e_r_minus_1 + (scale - 1.0)


@jit
def sigmoid_(x):
    y = 1.0 / (1.0 + exp_(-x))
    return y if x == x else np.float64(x)  # NaN stays NaN


@jit
def tanh_(x):
    # From e^2x - 1, not 1 - 2 / (1 + e^2x): that cancels near 0, where a gate's small value is all
    # of its contribution to the gradients (a layer-norm LSTM with tanh gates drew float32
    # gradients 10x further from the float64 truth than torch's).
    m = expm1_(2.0 * x)
    y = m / (m + 2.0)
    return y if x == x else np.float64(x)


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
def _reduced32(x):
    """:func:`_reduced` in float32 (clamped to ``±87``): ``(e^r - 1, 2^k)``."""
    v = min(max(x, -EXP_LIMIT_32), EXP_LIMIT_32)
    k = np.floor(v * LOG2E_32 + HALF_32)
    r = v - k * LN2_HI_32 - k * LN2_LO_32
    q = D7
    q = q * r + D6
    q = q * r + D5
    q = q * r + D4
    q = q * r + D3
    q = q * r + D2
    q = q * r + D1
    return q * r, _float32_from_bits((np.int64(k) + 127) << 23)


@jit
def exp32_(x):
    """``e^x`` in float32 for finite ``x``, to about 1 ulp, clamped to ``e^±87``."""
    e_r_minus_1, scale = _reduced32(x)
    return scale * (e_r_minus_1 + D0)


@jit
def expm1_32(x):
    """``e^x - 1`` in float32, to a few ulp near 0 too."""
    e_r_minus_1, scale = _reduced32(x)
    return scale * e_r_minus_1 + (scale - ONE_32)


@jit
def _sigmoid32(x):
    y = ONE_32 / (ONE_32 + exp32_(-x))
    return y if x == x else x


@jit
def _tanh32(x):
    m = expm1_32(TWO_32 * x)  # see tanh_
    y = m / (m + TWO_32)
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


def as_dtype_of(value, like):
    """``value`` in the precision of ``like``, an array or a scalar (float32 for float32): for
    the compiled loops, so that a loop over float32 values runs in float32 when a constant or a
    coefficient summed in float64 joins them (one float64 operand sends every element through
    float64, at half the vector width and with two conversions)."""
    return np.asarray(like).dtype.type(value)


@overload(as_dtype_of, jit_options={"error_model": "numpy", "fastmath": {"contract"}})
def _as_dtype_of(value, like):
    kind = like.dtype if isinstance(like, types.Array) else like
    if kind == types.float32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


def at_row(values, row):
    """``values[row]`` for an array of per-row values, ``values`` itself for a scalar: so that
    one compiled loop over rows serves a block of rows and a single row."""
    return values[row] if isinstance(values, np.ndarray) else values


@overload(at_row, jit_options={"error_model": "numpy", "fastmath": {"contract"}})
def _at_row(values, row):
    if isinstance(values, types.Array):
        return lambda values, row: values[row]
    return lambda values, row: values


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
    """``act'(x)`` written in terms of ``y = act(x)``, with torch's choice at the kinks (0); in
    ``y``'s precision."""
    one, zero = as_dtype_of(1.0, y), as_dtype_of(0.0, y)
    if code == TANH:
        return one - y * y
    if code == SIGMOID:
        return (one - y) * y
    if code == HARD_SIGMOID:
        return as_dtype_of(1.0 / 6.0, y) if zero < y < one else zero
    if code == RELU:
        return one if y > zero else zero
    return one


@jit
def times_derivative(code, y, d):
    """``d[j] *= act'(x[j])`` over a row, from ``y = act(x)``; the branch is outside the loop.
    In the row's precision: with a float64 one, tanh's took 0.22 against 0.095 ns an element in
    float32 (measured)."""
    n = y.shape[0]
    one, zero = as_dtype_of(1.0, d), as_dtype_of(0.0, d)
    if code == TANH:
        for j in range(n):
            d[j] *= one - y[j] * y[j]
    elif code == SIGMOID:
        for j in range(n):
            d[j] *= (one - y[j]) * y[j]
    elif code == HARD_SIGMOID:
        six = as_dtype_of(6.0, d)
        for j in range(n):
            d[j] = d[j] / six if zero < y[j] < one else zero
    elif code == RELU:
        for j in range(n):
            d[j] = d[j] if y[j] > zero else zero
