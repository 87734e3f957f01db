"""Compiled single steps for streaming inference (``RNN.step`` under ``torch.no_grad()``).

A step at batch 1 is a few thousand multiply-adds: what costs is the calling, so each kernel takes
the tensors' addresses (no tensor-to-array conversion) and does the whole step, matrix-vector
products included, in one call. The products run over transposed copies of the weights (kept by
:mod:`rnnkit.kernels.stepping` until a weight changes), one vectorised pass per input element.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.extending import intrinsic

from rnnkit.kernels._numba import (
    ONE_32,
    SIGMOID,
    TANH,
    act_,
    activate,
    jit,
    sigmoid_t,
    tanh_t,
)


@intrinsic
def _pointer(typingctx, address):
    """An ``int64`` address as a ``void*`` (for ``numba.carray``)."""
    if address != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(types.int64), codegen


@jit
def view(address, rows, cols, like):
    """The ``(rows, cols)`` C-contiguous array at ``address``, of ``like``'s dtype."""
    return carray(_pointer(address), (rows, cols), like.dtype)


@jit
def add_products(vector, weight_t, out):
    """``out += vector @ weight_t`` for ``weight_t (K, N)`` C-contiguous (a weight transposed):
    one vectorised pass over ``out`` per element of ``vector``."""
    for k in range(vector.shape[0]):
        a = vector[k]
        row = weight_t[k]
        for j in range(out.shape[0]):
            out[j] += a * row[j]


@jit
def _start(pre, bias):
    if bias.size > 0:
        for j in range(pre.shape[0]):
            pre[j] = bias[j]
    else:
        pre[:] = 0.0


@jit
def rnn_step(x_address, h_address, out, batch, like, weight_ih_t, weight_hh_t, bias, act):
    """``h_t = act(x W^T + h U^T + b)`` for each of ``batch`` rows (``bias`` is both biases)."""
    hidden, features = weight_hh_t.shape[1], weight_ih_t.shape[0]
    x = view(x_address, batch, features, like)
    h = view(h_address, batch, hidden, like)
    pre = np.empty(hidden, like.dtype)
    for b in range(batch):
        _start(pre, bias)
        add_products(x[b], weight_ih_t, pre)
        add_products(h[b], weight_hh_t, pre)
        activate(act, pre, out[b])


@jit
def gru_step(x_address, h_address, out, batch, like, weight_ih_t, weight_hh_t, bias_x, bias_h,
             reset_after, act, rec_act):
    """One GRU step (both of Keras's forms) for each of ``batch`` rows. ``bias_x`` is what adds
    to ``W x`` (``b_ih`` and the parts of ``b_hh`` outside the reset product), ``bias_h`` is
    ``b_hn`` (reset-after) or empty."""
    hidden, features = weight_hh_t.shape[0], weight_ih_t.shape[0]
    two_h = 2 * hidden
    x = view(x_address, batch, features, like)
    h = view(h_address, batch, hidden, like)
    pre_x = np.empty(3 * hidden, like.dtype)
    pre_h = np.empty(3 * hidden, like.dtype)
    reset_h = np.empty(hidden, like.dtype)
    plain = act == TANH and rec_act == SIGMOID
    for b in range(batch):
        _start(pre_x, bias_x)
        add_products(x[b], weight_ih_t, pre_x)
        pre_h[:] = 0.0
        if reset_after:
            add_products(h[b], weight_hh_t, pre_h)
            if bias_h.size > 0:
                for j in range(hidden):
                    pre_h[two_h + j] += bias_h[j]
            if plain:
                for j in range(hidden):
                    r = sigmoid_t(pre_x[j] + pre_h[j])
                    z = sigmoid_t(pre_x[hidden + j] + pre_h[hidden + j])
                    n = tanh_t(pre_x[two_h + j] + r * pre_h[two_h + j])
                    out[b, j] = z * h[b, j] + (ONE_32 - z) * n
                continue
            for j in range(hidden):
                r = act_(rec_act, pre_x[j] + pre_h[j])
                z = act_(rec_act, pre_x[hidden + j] + pre_h[hidden + j])
                n = act_(act, pre_x[two_h + j] + r * pre_h[two_h + j])
                out[b, j] = z * h[b, j] + (1.0 - z) * n
            continue
        add_products(h[b], weight_hh_t[:, :two_h], pre_h[:two_h])
        for j in range(hidden):
            reset_h[j] = act_(rec_act, pre_x[j] + pre_h[j]) * h[b, j]
        add_products(reset_h, weight_hh_t[:, two_h:], pre_h[two_h:])
        for j in range(hidden):
            z = act_(rec_act, pre_x[hidden + j] + pre_h[hidden + j])
            n = act_(act, pre_x[two_h + j] + pre_h[two_h + j])
            out[b, j] = z * h[b, j] + (1.0 - z) * n


@jit
def lstm_step(x_address, h_address, c_address, h_out, c_out, batch, like, weight_ih_t,
              weight_hh_t, bias, peephole, act, rec_act):
    """One LSTM step (optionally with peepholes) for each of ``batch`` rows (``bias`` is both
    biases)."""
    hidden, features = weight_hh_t.shape[0], weight_ih_t.shape[0]
    x = view(x_address, batch, features, like)
    h = view(h_address, batch, hidden, like)
    c = view(c_address, batch, hidden, like)
    pre = np.empty(4 * hidden, like.dtype)
    peep = peephole.shape[0] > 0
    plain = not peep and act == TANH and rec_act == SIGMOID
    for b in range(batch):
        _start(pre, bias)
        add_products(x[b], weight_ih_t, pre)
        add_products(h[b], weight_hh_t, pre)
        if plain:
            for j in range(hidden):
                i = sigmoid_t(pre[j])
                f = sigmoid_t(pre[hidden + j])
                g = tanh_t(pre[2 * hidden + j])
                o = sigmoid_t(pre[3 * hidden + j])
                c_new = f * c[b, j] + i * g
                c_out[b, j] = c_new
                h_out[b, j] = o * tanh_t(c_new)
            continue
        for j in range(hidden):
            c_prev = c[b, j]
            a_i, a_f = pre[j], pre[hidden + j]
            if peep:
                a_i += peephole[0, j] * c_prev
                a_f += peephole[1, j] * c_prev
            candidate = act_(act, pre[2 * hidden + j])
            c_new = act_(rec_act, a_f) * c_prev + act_(rec_act, a_i) * candidate
            a_o = pre[3 * hidden + j]
            if peep:
                a_o += peephole[2, j] * c_new
            c_out[b, j] = c_new
            h_out[b, j] = act_(rec_act, a_o) * act_(act, c_new)
