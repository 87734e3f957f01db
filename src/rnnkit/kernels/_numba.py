"""Numba helpers shared by the fused kernels: activation codes, masking and layer norm on rows.

Activations are passed to the compiled loops as small integer codes, so one compiled loop serves
every activation (numba specialises on argument types, not values). Each derivative is computed
from the activation's *output* ``y``, which is all the forward pass saves.

Every helper is ``@njit(cache=True, nogil=True)``: the machine code is cached on disk next to this
module, so a fresh process loads it instead of compiling again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rnnkit import activations

TANH, SIGMOID, HARD_SIGMOID, RELU, LINEAR = 0, 1, 2, 3, 4
ACTIVATION_CODES = {
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "hard_sigmoid": HARD_SIGMOID,
    "relu": RELU,
    "linear": LINEAR,
}

jit = njit(cache=True, nogil=True)


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


# exp(v) = 2^k * e^r with k = round(v / ln 2) and |r| <= ln(2) / 2: Cody and Waite's reduction
# (ln 2 split in two so that k * LN2_HI is exact), then e^r by its Taylor series to r^12, whose
# remainder is about 2e-16 relative. Written without calls or branches so LLVM vectorises it.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_LIMIT = 708.0  # e^708 is finite in float64; beyond it sigmoid and tanh are saturated anyway


@jit
def _exp_parts(x, factor, mantissa, exponent_bits):
    """``e^(factor * x[i]) = mantissa[i] * 2^k``; ``exponent_bits[i]`` holds 2^k's float64 bits."""
    for i in range(x.size):
        v = min(max(factor * x[i], -EXP_LIMIT), EXP_LIMIT)
        k = np.floor(v * LOG2E + 0.5)
        r = v - k * LN2_HI - k * LN2_LO
        p = 1.0 / 479001600.0
        for inverse_factorial in _INVERSE_FACTORIALS:
            p = p * r + inverse_factorial
        mantissa[i] = p
        exponent_bits[i] = (np.int64(k) + 1023) << 52


_INVERSE_FACTORIALS = tuple(1.0 / np.prod(np.arange(1.0, n + 1.0)) for n in range(11, -1, -1))


@jit
def activate_block(code, x, out):
    """``out[:] = act(x)`` over contiguous rows (``out`` may be ``x``), computed in float64.

    hard_sigmoid is Keras 3's ``relu6(x + 3) / 6``; tanh is ``1 - 2 / (1 + e^{2x})``.
    """
    n = x.size
    if code == SIGMOID or code == TANH:
        mantissa, bits = np.empty(n), np.empty(n, np.int64)
        _exp_parts(x, -1.0 if code == SIGMOID else 2.0, mantissa, bits)
        power = bits.view(np.float64)
        if code == SIGMOID:
            for i in range(n):
                out[i] = 1.0 / (1.0 + mantissa[i] * power[i])
        else:
            for i in range(n):
                out[i] = 1.0 - 2.0 / (1.0 + mantissa[i] * power[i])
    elif code == HARD_SIGMOID:
        for i in range(n):
            out[i] = min(max(x[i] + 3.0, 0.0), 6.0) / 6.0
    elif code == RELU:
        for i in range(n):
            out[i] = max(x[i], 0.0)
    else:
        for i in range(n):
            out[i] = x[i]


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
def emit_step(outputs, states, b, t, keep, zero_output, h_new):
    """Write ``outputs[b, t]`` and ``states[b, t + 1]`` from row ``h_new (O,)`` under the mask.

    A masked step carries the state and repeats the previous output (zeros before the first real
    step), or emits zeros when ``zero_output``.
    """
    if keep:
        outputs[b, t] = h_new
        states[b, t + 1] = h_new
        return
    states[b, t + 1] = states[b, t]
    if zero_output or t == 0:
        outputs[b, t] = 0.0
    else:
        outputs[b, t] = outputs[b, t - 1]


@jit
def route_output_grad(d_outputs, carry, b, t, keep, zero_output, d_state, d_new):
    """Gradient reaching row ``b``'s new h at step ``t``; the rest goes on in ``carry``.

    ``d_state (B, O)`` holds the gradient of the carried state after step ``t``. On a real step
    ``d_new[b]`` gets it plus the output's gradient (and any carried from later masked steps); on a
    masked step ``d_new[b]`` is zero, the state gradient passes through untouched, and the output's
    gradient flows to the previous output unless masked outputs are zeros.
    """
    if keep:
        d_new[b] = d_state[b] + d_outputs[b, t] + carry[b]
        carry[b] = 0.0
        return
    d_new[b] = 0.0
    if zero_output:
        carry[b] = 0.0
    else:
        carry[b] += d_outputs[b, t]


@jit
def recurrent_input(states, t, recurrent_mask, h_rec):
    """``h_rec = h_{t-1} * recurrent_mask`` into the preallocated ``h_rec (B, H_rec)``."""
    for b in range(h_rec.shape[0]):
        h_rec[b] = states[b, t] * recurrent_mask[b]


@jit
def layer_norm_row(x, eps, x_hat):
    """Normalise row ``x`` into ``x_hat`` (mean 0, variance 1); returns ``1 / std``."""
    n = x.size
    mean = x.sum() / n
    var = 0.0
    for j in range(n):
        var += (x[j] - mean) ** 2
    rstd = 1.0 / np.sqrt(var / n + eps)
    for j in range(n):
        x_hat[j] = (x[j] - mean) * rstd
    return rstd


@jit
def layer_norm_row_backward(d_y, x_hat, rstd, weight, d_x, d_weight, d_bias):
    """Backward of ``y = x_hat * weight + bias`` for one row: writes ``d_x``, accumulates params."""
    n = d_y.size
    mean_g = 0.0
    mean_gx = 0.0
    for j in range(n):
        g = d_y[j] * weight[j]
        mean_g += g
        mean_gx += g * x_hat[j]
        d_weight[j] += d_y[j] * x_hat[j]
        d_bias[j] += d_y[j]
    mean_g /= n
    mean_gx /= n
    for j in range(n):
        d_x[j] = rstd * (d_y[j] * weight[j] - mean_g - x_hat[j] * mean_gx)
