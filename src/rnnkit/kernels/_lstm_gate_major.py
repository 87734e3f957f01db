"""The LSTM's gate-major loops: the tanh/sigmoid cell without layer norm at B > 1.

:func:`~rnnkit.kernels._lstm_loops.lstm_forward` and ``lstm_backward`` run these steps instead of
their row loops for that cell. The saved gates are then gate-major, ``(4, T, B*H)``, so that each
gate of a step is one contiguous block of the batch and each step's elementwise pass is one flat
loop over it (a loop over one row of a few vectors is bound by the latency of its exponentials).
The same caching note as :mod:`rnnkit.kernels._numba` applies: after editing this file, delete
the kernels' ``__pycache__/*.nbi``/``*.nbc`` when working from a source tree.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._numba import ONE_32, jit, sigmoid_t, tanh_t
from rnnkit.kernels._rows import copy, repeat_rows, transpose_into


@jit
def flat_cell(i_, f_, g_, o_, u_i, u_f, u_g, u_o, c_prev, c_new, tanh_c, m):
    """The tanh/sigmoid cell over a gate-major block, flat: each of ``i_, f_, g_, o_`` holds one
    gate's input projection (biases included) for every unit of every row, ``(B*H,)``, and the
    activated gate on exit; ``u_*`` the matching ``U ĥ``. Writes ``c_new``, ``tanh(c_new)`` and
    ``m = o ⊙ tanh(c)``.

    One loop over the whole batch: LLVM vectorises it, and a loop this long keeps the vector
    units busy where a loop over one row of a few vectors waits on their latency (a row at H=32
    cost about 80 ns a call beyond its work, measured)."""
    for n in range(c_prev.size):
        i = sigmoid_t(i_[n] + u_i[n])
        f = sigmoid_t(f_[n] + u_f[n])
        g = tanh_t(g_[n] + u_g[n])
        o = sigmoid_t(o_[n] + u_o[n])
        c = f * c_prev[n] + i * g
        t = tanh_t(c)
        i_[n], f_[n], g_[n], o_[n] = i, f, g, o
        c_new[n] = c
        tanh_c[n] = t
        m[n] = o * t


@jit
def flat_peephole_cell(i_, f_, g_, o_, u_i, u_f, u_g, u_o, p_i, p_f, p_o, c_prev, c_new, tanh_c,
                        m):
    """:func:`flat_cell` with peepholes ``p_* (B*H,)`` (the peephole weights repeated per row)."""
    for n in range(c_prev.size):
        cp = c_prev[n]
        i = sigmoid_t(i_[n] + u_i[n] + p_i[n] * cp)
        f = sigmoid_t(f_[n] + u_f[n] + p_f[n] * cp)
        g = tanh_t(g_[n] + u_g[n])
        c = f * cp + i * g
        o = sigmoid_t(o_[n] + u_o[n] + p_o[n] * c)
        t = tanh_t(c)
        i_[n], f_[n], g_[n], o_[n] = i, f, g, o
        c_new[n] = c
        tanh_c[n] = t
        m[n] = o * t


@jit
def flat_step(i_, f_, g_, o_, u_i, u_f, u_g, u_o, peep_rows, offset, c_prev, c_new, tanh_c, m):
    """:func:`flat_cell` or, when ``peep_rows (3, N)`` is not empty, :func:`flat_peephole_cell`
    (reading ``peep_rows`` from ``offset`` on)."""
    if peep_rows.shape[0] > 0:
        n = c_prev.size
        flat_peephole_cell(i_, f_, g_, o_, u_i, u_f, u_g, u_o, peep_rows[0, offset : offset + n],
                            peep_rows[1, offset : offset + n], peep_rows[2, offset : offset + n],
                            c_prev, c_new, tanh_c, m)
    else:
        flat_cell(i_, f_, g_, o_, u_i, u_f, u_g, u_o, c_prev, c_new, tanh_c, m)


@jit
def gate_start(g, t, steps, batch, hidden):
    """Where gate ``g`` of step ``t`` starts in the saved gates, flat and gate-major: ``(4, T,
    B*H)``, each gate of a step one contiguous block of the batch."""
    return (g * steps + t) * batch * hidden


@jit
def gate_major_projection(x2, weight_ih_t, bias, batch, gates):
    """The input projection of every step, biases included, into the saved ``gates`` (flat, in
    :func:`gate_start`'s layout): one GEMM per gate, on a contiguous copy of that gate's columns
    of ``weight_ih_t = W^T`` (``W`` may be stored either way: the Keras face's is transposed),
    then the biases in one pass per gate and step."""
    hidden = weight_ih_t.shape[1] // 4
    rows, width = x2.shape[0], batch * hidden
    steps = rows // batch
    projection = gates.reshape(4, rows, hidden)
    for g in range(4):
        columns = np.ascontiguousarray(weight_ih_t[:, g * hidden : (g + 1) * hidden])
        np.dot(x2, columns, projection[g])
    bias_rows = np.empty((4, width), x2.dtype)
    repeat_rows(bias, batch, bias_rows)
    for g in range(4):
        row = bias_rows[g]
        for t in range(steps):
            start = gate_start(g, t, steps, batch, hidden)
            block = gates[start : start + width]
            for n in range(width):
                block[n] += row[n]


@jit
def gate_major_step(t, steps, h_rec, weight_hh, weight_hh_t, gate_blocks, batch_minor, keep,
                     gates, peep_rows, product, product_t, c_all, tanh_c, m):
    """Step ``t`` of the tanh/sigmoid cell without layer norm, one gate at a time.

    ``gates`` (flat, see :func:`gate_start`) holds each gate's input projection for every step
    and receives the activated gates. ``U ĥ`` is computed per gate into ``product (4, B, H)``:
    from ``gate_blocks (4, R, H)``, the gates' columns of ``U^T``, or batch-minor into
    ``product_t (4H, B)`` and transposed per gate. Then one flat pass over the batch
    (:func:`flat_cell`); a step with masked rows runs it row by row, and masked rows carry their
    cell and get zeros in ``m``. ``m (B, H)`` receives ``o ⊙ tanh(c)``. (At B=1
    :func:`~rnnkit.kernels._lstm_loops._plain_row` runs the cell.)
    """
    batch, hidden = m.shape
    width = batch * hidden
    u = product.reshape(4, width)
    if batch_minor:
        np.dot(weight_hh, h_rec.T, product_t)
        for g in range(4):
            transpose_into(product_t[g * hidden : (g + 1) * hidden], product[g])
    else:
        for g in range(4):
            np.dot(h_rec, gate_blocks[g], product[g])
    i0, f0 = gate_start(0, t, steps, batch, hidden), gate_start(1, t, steps, batch, hidden)
    g0, o0 = gate_start(2, t, steps, batch, hidden), gate_start(3, t, steps, batch, hidden)
    c_prev, c_new = c_all[t].reshape(width), c_all[t + 1].reshape(width)
    tanh_row, m_row = tanh_c[t].reshape(width), m.reshape(width)
    all_kept = True
    for b in range(batch):
        all_kept = all_kept and keep[b, t]
    for k in range(1 if all_kept else batch):
        lo, hi = (0, width) if all_kept else (k * hidden, (k + 1) * hidden)
        if not all_kept and not keep[k, t]:
            copy(c_prev[lo:hi], c_new[lo:hi])
            # m is no output here, but a projection's weight gradient multiplies it by its zero
            # gradient: it must not hold whatever the reused memory held (NaN * 0 is NaN)
            m_row[lo:hi] = 0.0
            continue
        flat_step(gates[i0 + lo : i0 + hi], gates[f0 + lo : f0 + hi], gates[g0 + lo : g0 + hi],
                   gates[o0 + lo : o0 + hi], u[0, lo:hi], u[1, lo:hi], u[2, lo:hi], u[3, lo:hi],
                   peep_rows, lo, c_prev[lo:hi], c_new[lo:hi], tanh_row[lo:hi], m_row[lo:hi])


@jit
def flat_cell_backward(d_m, i_, f_, g_, o_, c_prev, tanh_c, d_c, d_i, d_f, d_g, d_o):
    """Backward of :func:`flat_cell` over a flat block: the gates' gradients ``d_* (N,)`` from
    ``d_m`` and ``d_c`` (in: d(c_t), out: d(c_{t-1}))."""
    for n in range(d_m.size):
        i, f, cand, o = i_[n], f_[n], g_[n], o_[n]
        t = tanh_c[n]
        dm = d_m[n]
        d_cell = d_c[n] + dm * o * (ONE_32 - t * t)
        d_i[n] = d_cell * cand * i * (ONE_32 - i)
        d_f[n] = d_cell * c_prev[n] * f * (ONE_32 - f)
        d_g[n] = d_cell * i * (ONE_32 - cand * cand)
        d_o[n] = dm * t * o * (ONE_32 - o)
        d_c[n] = d_cell * f


@jit
def flat_peephole_cell_backward(d_m, i_, f_, g_, o_, c_prev, c_new, tanh_c, p_i, p_f, p_o, d_c,
                                 d_i, d_f, d_g, d_o, dp_i, dp_f, dp_o):
    """Backward of :func:`flat_peephole_cell`; accumulates the peepholes' gradients per unit of
    every row into ``dp_* (N,)``."""
    for n in range(d_m.size):
        i, f, cand, o = i_[n], f_[n], g_[n], o_[n]
        t = tanh_c[n]
        dm = d_m[n]
        d_out = dm * t * o * (ONE_32 - o)
        d_cell = d_c[n] + dm * o * (ONE_32 - t * t) + p_o[n] * d_out
        d_in = d_cell * cand * i * (ONE_32 - i)
        d_forget = d_cell * c_prev[n] * f * (ONE_32 - f)
        d_i[n], d_f[n], d_o[n] = d_in, d_forget, d_out
        d_g[n] = d_cell * i * (ONE_32 - cand * cand)
        d_c[n] = d_cell * f + p_i[n] * d_in + p_f[n] * d_forget
        dp_i[n] += d_in * c_prev[n]
        dp_f[n] += d_forget * c_prev[n]
        dp_o[n] += d_out * c_new[n]


@jit
def gate_major_step_backward(t, steps, d_m, gates, c_all, tanh_c, keep, peep_rows, d_c,
                              d_peep_rows, work, d_gates_t):
    """Step ``t``'s gate gradients for :func:`gate_major_step`'s cell, into ``d_gates_t (B,
    4H)`` (the layout the weight gradients' GEMMs read): one flat pass over the batch, through
    ``work (4, B*H)`` and then row by row into ``d_gates_t``. ``d_c (B, H)`` goes from d(c_t)
    to d(c_{t-1}); with peepholes ``d_peep_rows (3, B*H)`` accumulates their gradients per unit
    and row. A step with masked rows runs row by row; masked rows get zero and leave ``d_c`` as
    it is."""
    batch, hidden = d_c.shape
    width = batch * hidden
    i0, f0 = gate_start(0, t, steps, batch, hidden), gate_start(1, t, steps, batch, hidden)
    g0, o0 = gate_start(2, t, steps, batch, hidden), gate_start(3, t, steps, batch, hidden)
    dm, dc = d_m.reshape(width), d_c.reshape(width)
    c_prev, c_new = c_all[t].reshape(width), c_all[t + 1].reshape(width)
    tanh_row = tanh_c[t].reshape(width)
    all_kept = True
    for b in range(batch):
        all_kept = all_kept and keep[b, t]
    for k in range(1 if all_kept else batch):
        lo, hi = (0, width) if all_kept else (k * hidden, (k + 1) * hidden)
        if not all_kept and not keep[k, t]:
            d_gates_t[k] = 0.0
            continue
        i_, f_ = gates[i0 + lo : i0 + hi], gates[f0 + lo : f0 + hi]
        g_, o_ = gates[g0 + lo : g0 + hi], gates[o0 + lo : o0 + hi]
        if peep_rows.shape[0] > 0:
            flat_peephole_cell_backward(
                dm[lo:hi], i_, f_, g_, o_, c_prev[lo:hi], c_new[lo:hi], tanh_row[lo:hi],
                peep_rows[0, lo:hi], peep_rows[1, lo:hi], peep_rows[2, lo:hi], dc[lo:hi],
                work[0, lo:hi], work[1, lo:hi], work[2, lo:hi], work[3, lo:hi],
                d_peep_rows[0, lo:hi], d_peep_rows[1, lo:hi], d_peep_rows[2, lo:hi])
        else:
            flat_cell_backward(dm[lo:hi], i_, f_, g_, o_, c_prev[lo:hi], tanh_row[lo:hi],
                                dc[lo:hi], work[0, lo:hi], work[1, lo:hi], work[2, lo:hi],
                                work[3, lo:hi])
        for b in range(lo // hidden, hi // hidden):
            for g in range(4):
                copy(work[g, b * hidden : (b + 1) * hidden],
                     d_gates_t[b, g * hidden : (g + 1) * hidden])
