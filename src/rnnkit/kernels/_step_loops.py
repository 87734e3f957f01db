"""Compiled single steps for streaming inference (``RNN.step`` under ``torch.no_grad()``).

A step at batch 1 is a few thousand multiply-adds: what costs is the calling, so each kernel takes
one array and plain integers (the tensors' addresses, sizes, activation codes: the cheapest
arguments to unbox), and does the whole step, matrix-vector products included, in one call. All
three share one signature, ``(packed, features, mode, batch, x, h, c, out, y)``: the first three
are fixed per cell (bound once by :mod:`rnnkit.kernels.stepping`), and ``c`` is ignored by the
families without a cell state. ``out`` is where the new state goes, its tensors one after the
other (LSTM: ``h`` then ``c``, ``batch * H`` values each); ``y``, unless 0, gets a copy of the new
``h`` (a layer's output that must not share memory with its state).

The array is the cell's weights packed by :mod:`rnnkit.kernels.stepping` (kept until a weight
changes), ``(I + H + extra, G*H)`` with the gates along the columns:

- rows ``[0, I)``: ``weight_ih`` transposed; rows ``[I, I+H)``: ``weight_hh`` transposed;
- row ``I+H``: the bias added to the gates (``b_ih + b_hh``; for GRU the part of ``b_hh`` outside
  the reset product);
- GRU, row ``I+H+1``: the bias inside the reset product (``[0, 0, b_hn]``, zeros without one);
- LSTM with peepholes, row ``I+H+1``: ``[w_ci, w_cf, w_co, 0]``.

An address of 0 for the state stands for zeros (the default initial state). The activations (and
GRU's ``reset_after``) come as one integer, :func:`mode_of`: each argument costs the call a
little (15-45 ns measured), against about 1.4 us for the kernel's own work at H=64.
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
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

MODE_BASE = 8  # above every activation code


def mode_of(activation: int, recurrent_activation: int, reset_after: bool = False) -> int:
    """The activation codes and GRU's ``reset_after`` as one integer (see :func:`modes`)."""
    return activation + MODE_BASE * (recurrent_activation + MODE_BASE * int(reset_after))


@jit
def modes(mode):
    """``(activation, recurrent_activation, reset_after)`` from :func:`mode_of`'s integer."""
    return mode % MODE_BASE, (mode // MODE_BASE) % MODE_BASE, mode // (MODE_BASE * MODE_BASE)


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
    """The ``(rows, cols)`` C-contiguous array at ``address`` (zeros if 0), of ``like``'s dtype."""
    if address == 0:
        return np.zeros((rows, cols), like.dtype)
    return carray(_pointer(address), (rows, cols), like.dtype)


@jit
def copy_to(address, rows):
    """``rows`` copied to the array at ``address`` as well, unless ``address`` is 0."""
    if address != 0:
        view(address, rows.shape[0], rows.shape[1], rows)[:] = rows


@jit
def add_products(vector, packed, first, out):
    """``out += vector @ packed[first : first + len(vector)]``, ``out`` of ``packed``'s width.

    Four rows per pass over ``out``: a quarter of the loads and stores of ``out`` that one row per
    pass costs (measured 1.7x faster at H=64)."""
    n = vector.shape[0]
    k = 0
    while k + 4 <= n:
        a0, a1, a2, a3 = vector[k], vector[k + 1], vector[k + 2], vector[k + 3]
        r0, r1 = packed[first + k], packed[first + k + 1]
        r2, r3 = packed[first + k + 2], packed[first + k + 3]
        for j in range(out.shape[0]):
            out[j] += (a0 * r0[j] + a1 * r1[j]) + (a2 * r2[j] + a3 * r3[j])
        k += 4
    while k < n:
        a, row = vector[k], packed[first + k]
        for j in range(out.shape[0]):
            out[j] += a * row[j]
        k += 1


@jit
def rnn_step(
    packed, features, mode, batch, x_address, h_address, c_address, out_address, y_address
):
    """``h_t = act(x W^T + h U^T + b)`` for each of ``batch`` rows."""
    act = modes(mode)[0]
    hidden = packed.shape[1]
    x = view(x_address, batch, features, packed)
    h = view(h_address, batch, hidden, packed)
    out = view(out_address, batch, hidden, packed)
    bias = packed[features + hidden]
    for b in range(batch):
        pre = out[b]
        pre[:] = bias
        add_products(x[b], packed, 0, pre)
        if h_address != 0:
            add_products(h[b], packed, features, pre)
        activate(act, pre, pre)
    copy_to(y_address, out)


@jit
def gru_step(
    packed, features, mode, batch, x_address, h_address, c_address, out_address, y_address
):
    """One GRU step (both of Keras's forms, by ``reset_after``) for each of ``batch`` rows.

    Gates ``r, z, n`` along the columns; ``h_t = z * h + (1 - z) * n``."""
    act, rec_act, reset_after = modes(mode)
    hidden = packed.shape[1] // 3
    two_h = 2 * hidden
    x = view(x_address, batch, features, packed)
    h = view(h_address, batch, hidden, packed)
    out = view(out_address, batch, hidden, packed)
    bias_x, bias_h = packed[features + hidden], packed[features + hidden + 1]
    pre_x = np.empty(3 * hidden, packed.dtype)
    pre_h = np.empty(3 * hidden, packed.dtype)
    reset_h = np.empty(hidden, packed.dtype)
    plain = act == TANH and rec_act == SIGMOID
    for b in range(batch):
        pre_x[:] = bias_x
        add_products(x[b], packed, 0, pre_x)
        pre_h[:] = bias_h
        if reset_after:
            add_products(h[b], packed, features, pre_h)
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
        # Reset before: n reads (r * h) U_n^T, so r comes first and the product waits for it.
        add_products(h[b], packed[:, :two_h], features, pre_h[:two_h])
        for j in range(hidden):
            reset_h[j] = act_(rec_act, pre_x[j] + pre_h[j]) * h[b, j]
        add_products(reset_h, packed[:, two_h:], features, pre_h[two_h:])
        for j in range(hidden):
            z = act_(rec_act, pre_x[hidden + j] + pre_h[hidden + j])
            n = act_(act, pre_x[two_h + j] + pre_h[two_h + j])
            out[b, j] = z * h[b, j] + (1.0 - z) * n
    copy_to(y_address, out)


@jit
def lstm_step(
    packed, features, mode, batch, x_address, h_address, c_address, out_address, y_address
):
    """One LSTM step (with peepholes when ``packed`` has their row) for each of ``batch`` rows.

    Gates ``i, f, g, o`` along the columns; ``c_t = f * c + i * g``, ``h_t = o * act(c_t)``."""
    act, rec_act = modes(mode)[:2]
    hidden = packed.shape[1] // 4
    x = view(x_address, batch, features, packed)
    h = view(h_address, batch, hidden, packed)
    c = view(c_address, batch, hidden, packed)
    h_out = view(out_address, batch, hidden, packed)
    c_out = view(out_address + batch * hidden * packed.itemsize, batch, hidden, packed)
    bias = packed[features + hidden]
    peep = packed.shape[0] > features + hidden + 1
    peephole = packed[packed.shape[0] - 1]
    pre = np.empty(4 * hidden, packed.dtype)
    plain = not peep and act == TANH and rec_act == SIGMOID
    for b in range(batch):
        pre[:] = bias
        add_products(x[b], packed, 0, pre)
        if h_address != 0:
            add_products(h[b], packed, features, pre)
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
                a_i += peephole[j] * c_prev
                a_f += peephole[hidden + j] * c_prev
            candidate = act_(act, pre[2 * hidden + j])
            c_new = act_(rec_act, a_f) * c_prev + act_(rec_act, a_i) * candidate
            a_o = pre[3 * hidden + j]
            if peep:
                a_o += peephole[2 * hidden + j] * c_new
            c_out[b, j] = c_new
            h_out[b, j] = act_(rec_act, a_o) * act_(act, c_new)
    copy_to(y_address, h_out)


KERNELS = {"rnn": rnn_step, "gru": gru_step, "lstm": lstm_step}


# -- entries for the native step (rnnkit/kernels/_native.cpp's Stepper) ---------------------------
# The C++ step calls these through their address, with one int64 block:
# ``[packed address, rows, columns, features, mode, batch, x, h, c, out, y]``.
F32 = np.empty(0, np.float32)
F64 = np.empty(0, np.float64)


@jit
def step_entry(a, kernel_of, like):
    """One step of ``kernel_of``'s family from a block (see above), on arrays of ``like``'s
    dtype."""
    packed = carray(_pointer(a[0]), (a[1], a[2]), like.dtype)
    kernel_of(packed, a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10])


def _rnn_f32(a):
    step_entry(a, rnn_step, F32)


def _rnn_f64(a):
    step_entry(a, rnn_step, F64)


def _gru_f32(a):
    step_entry(a, gru_step, F32)


def _gru_f64(a):
    step_entry(a, gru_step, F64)


def _lstm_f32(a):
    step_entry(a, lstm_step, F32)


def _lstm_f64(a):
    step_entry(a, lstm_step, F64)


STEP_ENTRIES = {
    ("rnn", np.float32): _rnn_f32, ("rnn", np.float64): _rnn_f64,
    ("gru", np.float32): _gru_f32, ("gru", np.float64): _gru_f64,
    ("lstm", np.float32): _lstm_f32, ("lstm", np.float64): _lstm_f64,
}
STEP_BLOCK = 11  # int64 values in an entry's block


@functools.cache
def step_entry_address(family: str, dtype) -> int:
    """The address of ``family``'s compiled step entry for ``dtype`` (compiled, or loaded from
    numba's cache, on first use)."""
    return cfunc(types.void(types.CPointer(types.int64)), cache=True)(
        STEP_ENTRIES[family, dtype]
    ).address
