"""The LSTM's gate-major loops: the tanh/sigmoid cell at B > 1, with or without peepholes and
layer norm.

:func:`~rnnkit.kernels._lstm_loops.lstm_forward` and ``lstm_backward`` run these steps instead of
their row loops for that cell. The saved gates are then gate-major, ``(4, T, B*H)``, so that each
gate of a step is one contiguous block of the batch and each step's elementwise pass is one flat
loop over it (a loop over one row of a few vectors is bound by the latency of its exponentials).
Layer norm runs on row-major rows, as the row loops run it (a row's statistics over four gate
blocks of a few vectors each ran 2x slower, measured), and its normalised values are saved
row-major as there; the gates they feed are gate-major.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._blas import dot_rows
from rnnkit.kernels._mkl import packed_product
from rnnkit.kernels._numba import ONE_32, jit, sigmoid_t, tanh_t
from rnnkit.kernels._rows import (
    copy,
    layer_norm_rows_backward,
    repeat_rows,
    row_mean_rstd,
    transpose_into,
)


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
def flat_gates(i_, f_, g_, o_, u_i, u_f, u_g, u_o, peep_rows, offset, c_prev, c_new):
    """The first pass of the cell with layer norm on ``c``: :func:`flat_cell`'s gates and
    ``c_new``, without ``tanh`` and ``m`` (those wait for the row's statistics of ``c_new``);
    peepholes from ``peep_rows (3, N)`` at ``offset`` when it is not empty."""
    if peep_rows.shape[0] > 0:
        n = c_prev.size
        p_i = peep_rows[0, offset : offset + n]
        p_f = peep_rows[1, offset : offset + n]
        p_o = peep_rows[2, offset : offset + n]
        for k in range(n):
            cp = c_prev[k]
            i = sigmoid_t(i_[k] + u_i[k] + p_i[k] * cp)
            f = sigmoid_t(f_[k] + u_f[k] + p_f[k] * cp)
            g = tanh_t(g_[k] + u_g[k])
            c = f * cp + i * g
            i_[k], f_[k], g_[k] = i, f, g
            o_[k] = sigmoid_t(o_[k] + u_o[k] + p_o[k] * c)
            c_new[k] = c
        return
    for k in range(c_prev.size):
        i = sigmoid_t(i_[k] + u_i[k])
        f = sigmoid_t(f_[k] + u_f[k])
        g = tanh_t(g_[k] + u_g[k])
        i_[k], f_[k], g_[k] = i, f, g
        o_[k] = sigmoid_t(o_[k] + u_o[k])
        c_new[k] = f * c_prev[k] + i * g


@jit
def normed_output_rows(o_, c_new, c_hat, rstd, ln_weight, ln_bias, eps, tanh_c, m):
    """The second pass of the cell with layer norm on ``c``, over ``c_new (B*H,)``: ``tanh_c =
    tanh(LN_c(c_new))`` and ``m = o ⊙ tanh_c``, keeping ``c_hat (B, H)`` and LN's ``1 / std`` in
    ``rstd (B,)`` for the backward.

    Row by row it normalises and scales into ``tanh_c``; then one flat loop over the batch takes
    the ``tanh``: in a loop over one row of a few vectors the exponentials' latency dominated (the
    pass took 2.5 against 1.3 µs a step at B=32, H=32, measured)."""
    hidden = ln_weight.size
    for b in range(c_hat.shape[0]):
        lo = b * hidden
        shift, mean, scale = row_mean_rstd(c_new[lo : lo + hidden], eps)
        rstd[b] = scale
        for j in range(hidden):
            normed = ((c_new[lo + j] - shift) - mean) * scale
            c_hat[b, j] = normed
            tanh_c[lo + j] = normed * ln_weight[j] + ln_bias[j]
    for n in range(tanh_c.size):
        t = tanh_t(tanh_c[n])
        tanh_c[n] = t
        m[n] = o_[n] * t


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
def gate_major_projection(x2, weight_ih_t, rows, first, gates):
    """The input projection of rows ``first ..`` (``x2``: those rows of all ``rows = T*B``) into
    the saved ``gates`` (flat, in :func:`gate_start`'s layout), biases not included: one GEMM per
    gate, on a contiguous copy of that gate's columns of ``weight_ih_t = W^T`` (``W`` may be
    stored either way: the Keras face's is transposed)."""
    hidden = weight_ih_t.shape[1] // 4
    projection = gates.reshape(4, rows, hidden)
    count = x2.shape[0]
    for g in range(4):
        columns = np.ascontiguousarray(weight_ih_t[:, g * hidden : (g + 1) * hidden])
        dot_rows(x2, columns, projection[g, first : first + count])


@jit
def add_gate_biases(bias, steps, batch, gates, t0, t1):
    """``gates`` (flat, gate-major) plus ``bias (4H,)`` at steps ``t0 .. t1 - 1``: one pass per
    gate and step."""
    hidden = bias.size // 4
    width = batch * hidden
    bias_rows = np.empty((4, width), gates.dtype)
    repeat_rows(bias, batch, bias_rows)
    for g in range(4):
        row = bias_rows[g]
        for t in range(t0, t1):
            start = gate_start(g, t, steps, batch, hidden)
            block = gates[start : start + width]
            for n in range(width):
                block[n] += row[n]


@jit
def layer_norm_projection(x_hat, steps, batch, eps, weight, bias, rstd, gates, n0, n1):
    """Layer norm of rows ``n0 .. n1 - 1`` of the input projection, ``x_hat (T*B, 4H)``
    (row-major, as the GEMM wrote it), normalised in place, each row's ``1 / std`` into ``rstd
    (T*B,)``; ``gates`` (flat, gate-major, see :func:`gate_start`) receives ``x_hat ⊙ weight +
    bias`` (``bias (4H,)``: every bias that joins the projection)."""
    hidden = weight.size // 4
    stride = gate_start(1, 0, steps, batch, hidden)
    for n in range(n0, n1):  # row (t, b) starts at gate_start(0, t, ...) + b * hidden
        row = x_hat[n]
        shift, mean, scale = row_mean_rstd(row, eps)
        rstd[n] = scale
        for j in range(row.size):  # in place: one array, so that LLVM vectorises the loop
            row[j] = ((row[j] - shift) - mean) * scale
        _scatter_gates(row, weight, bias, gates, n * hidden, stride)


@jit
def _scatter_gates(row, weight, bias, out, start, stride):
    """``out``'s four gate blocks at ``start + g * stride`` receive ``row (4H,)`` (row-major)
    ``⊙ weight + bias``."""
    hidden = weight.size // 4
    for g in range(4):
        lo, first = start + g * stride, g * hidden
        target = out[lo : lo + hidden]
        for j in range(hidden):
            target[j] = row[first + j] * weight[first + j] + bias[first + j]


@jit
def _normalise_into_gates(row, eps, row_hat, weight, out, start, stride):
    """Layer norm of ``row (4H,)`` (row-major) in one pass after its moments: ``row_hat``
    receives it normalised, and ``out``'s four gate blocks at ``start + g * stride`` receive it
    ``⊙ weight``. Returns ``1 / std``. ``row_hat`` must not be ``row``: LLVM would then run the
    loop scalar (its overlap check fails)."""
    hidden = weight.size // 4
    shift, mean, scale = row_mean_rstd(row, eps)
    for g in range(4):
        lo, first = start + g * stride, g * hidden
        target = out[lo : lo + hidden]
        for j in range(hidden):
            normed = ((row[first + j] - shift) - mean) * scale
            row_hat[first + j] = normed
            target[j] = normed * weight[first + j]
    return scale


@jit
def all_kept(keep, t):
    """Whether every row is real at step ``t``."""
    for b in range(keep.shape[0]):
        if not keep[b, t]:
            return False
    return True


@jit
def gate_major_step(t, steps, h_rec, weight_hh, weight_hh_t, gate_blocks, batch_minor, packed,
                    keep, gates, peep_rows, product, product_t, c_all, tanh_c, m):
    """Step ``t`` of the tanh/sigmoid cell without layer norm, one gate at a time.

    ``gates`` (flat, see :func:`gate_start`) holds each gate's input projection for every step
    and receives the activated gates. ``U ĥ`` is computed per gate into ``product (4, B, H)``:
    from ``gate_blocks (4, R, H)``, the gates' columns of ``U^T``, or batch-minor into
    ``product_t (4H, B)`` and transposed per gate, or on the gates' rows of ``U`` packed,
    ``packed (4, ·)`` (see :mod:`rnnkit.kernels._mkl`; zero columns for none). Then
    :func:`_cell` runs the cell; ``m (B, H)`` receives ``o ⊙ tanh(c)``. (At B=1
    :func:`~rnnkit.kernels._lstm_loops._plain_row` runs the cell.)
    """
    batch, hidden = m.shape
    width = batch * hidden
    u = product.reshape(4, width)
    if packed.shape[1] > 0:
        for g in range(4):
            packed_product(h_rec, packed[g], product[g])
    elif batch_minor:
        np.dot(weight_hh, h_rec.T, product_t)
        for g in range(4):
            transpose_into(product_t[g * hidden : (g + 1) * hidden], product[g])
    else:
        for g in range(4):
            np.dot(h_rec, gate_blocks[g], product[g])
    no_norm = u[0, :0]  # no LN_c: its weights are empty, and its saved arrays never read
    _cell(t, steps, u, keep, gates, peep_rows, c_all, tanh_c, m, 0.0, no_norm, no_norm,
          tanh_c[:0], tanh_c[:0])


@jit
def gate_major_normed_step(t, steps, product, keep, gates, peep_rows, c_all, tanh_c, m, eps,
                            ln_hh_weight, ln_c_weight, ln_c_bias, normed, h_hat, c_hat, rstd):
    """Step ``t`` of the tanh/sigmoid cell with layer norm, from ``U ĥ`` in ``product (B, 4H)``
    (row-major: each row's statistics are over one contiguous row).

    Each row is normalised into ``h_hat[t]`` (kept, with ``1 / std`` in ``rstd[t, :, 0]``) and
    scattered, times LN_hh's weight, into the gate-major ``normed (4, B*H)`` (LN_hh's bias has
    joined ``gates``). Then :func:`_cell` runs the cell, keeping ``c_hat[t] (B, H)`` and
    ``rstd[t, :, 1]``.
    """
    batch, hidden = m.shape
    width = batch * hidden
    flat_normed = normed.reshape(4 * width)
    for b in range(batch):
        rstd[t, b, 0] = _normalise_into_gates(product[b], eps, h_hat[t, b], ln_hh_weight,
                                              flat_normed, b * hidden, width)
    _cell(t, steps, normed, keep, gates, peep_rows, c_all, tanh_c, m, eps, ln_c_weight, ln_c_bias,
          c_hat, rstd)


@jit
def _cell(t, steps, u, keep, gates, peep_rows, c_all, tanh_c, m, eps, ln_c_weight, ln_c_bias,
          c_hat, rstd):
    """Step ``t``'s cell from ``u (4, B*H)`` (each gate's ``U ĥ``, gate-major): one flat pass over
    the batch, or row by row when a row is masked (masked rows carry their cell and get zeros in
    ``m``). Without layer norm :func:`flat_step`; with it (``ln_c_weight`` not empty)
    :func:`flat_gates`, then :func:`normed_output_rows` into ``c_hat[t]`` and ``rstd[t, :, 1]``."""
    batch, hidden = m.shape
    width = batch * hidden
    i0, f0 = gate_start(0, t, steps, batch, hidden), gate_start(1, t, steps, batch, hidden)
    g0, o0 = gate_start(2, t, steps, batch, hidden), gate_start(3, t, steps, batch, hidden)
    c_prev, c_new = c_all[t].reshape(width), c_all[t + 1].reshape(width)
    tanh_row, m_row = tanh_c[t].reshape(width), m.reshape(width)
    every = all_kept(keep, t)
    for k in range(1 if every else batch):
        lo, hi = (0, width) if every else (k * hidden, (k + 1) * hidden)
        if not every and not keep[k, t]:
            copy(c_prev[lo:hi], c_new[lo:hi])
            # m is no output here, but a projection's weight gradient multiplies it by its zero
            # gradient: it must not hold whatever the reused memory held (NaN * 0 is NaN)
            m_row[lo:hi] = 0.0
            continue
        i_, f_ = gates[i0 + lo : i0 + hi], gates[f0 + lo : f0 + hi]
        g_, o_ = gates[g0 + lo : g0 + hi], gates[o0 + lo : o0 + hi]
        if ln_c_weight.size == 0:
            flat_step(i_, f_, g_, o_, u[0, lo:hi], u[1, lo:hi], u[2, lo:hi], u[3, lo:hi],
                      peep_rows, lo, c_prev[lo:hi], c_new[lo:hi], tanh_row[lo:hi], m_row[lo:hi])
            continue
        flat_gates(i_, f_, g_, o_, u[0, lo:hi], u[1, lo:hi], u[2, lo:hi], u[3, lo:hi], peep_rows,
                   lo, c_prev[lo:hi], c_new[lo:hi])
        normed_output_rows(o_, c_new[lo:hi], c_hat[t, lo // hidden : hi // hidden],
                           rstd[t, lo // hidden : hi // hidden, 1], ln_c_weight, ln_c_bias, eps,
                           tanh_row[lo:hi], m_row[lo:hi])


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
def normed_output_rows_backward(d_m, o_, tanh_c, c_hat, rstd, ln_weight, d_norm, d_cell,
                                d_ln_weight, d_ln_bias):
    """Backward of :func:`normed_output_rows` into ``c``, row by row: ``d_cell (B*H,)`` gets
    the gradient reaching ``c_new`` through ``m`` (``d_norm (B*H,)`` is work); accumulates
    LN_c's parameter gradients."""
    rows, hidden = c_hat.shape
    for n in range(d_m.size):
        t = tanh_c[n]
        d_norm[n] = d_m[n] * o_[n] * (ONE_32 - t * t)
    layer_norm_rows_backward(d_norm.reshape((rows, hidden)), c_hat, rstd, ln_weight,
                             d_cell.reshape((rows, hidden)), d_ln_weight, d_ln_bias)


@jit
def flat_gates_backward(d_m, d_cell_h, i_, f_, g_, o_, c_prev, c_new, tanh_c, peep_rows, offset,
                        d_c, d_i, d_f, d_g, d_o, d_peep_rows):
    """Backward of :func:`flat_gates` given ``d_cell_h``, the gradient reaching ``c_new``
    through ``m`` (from :func:`normed_output_rows_backward`): the gates' gradients ``d_* (N,)``;
    ``d_c`` goes from d(c_t) to d(c_{t-1}); with peepholes (``peep_rows (3, N)`` at ``offset``)
    ``d_peep_rows`` accumulates their gradients per unit and row."""
    n = d_m.size
    if peep_rows.shape[0] > 0:
        p_i = peep_rows[0, offset : offset + n]
        p_f = peep_rows[1, offset : offset + n]
        p_o = peep_rows[2, offset : offset + n]
        dp_i = d_peep_rows[0, offset : offset + n]
        dp_f = d_peep_rows[1, offset : offset + n]
        dp_o = d_peep_rows[2, offset : offset + n]
        for k in range(n):
            i, f, cand, o = i_[k], f_[k], g_[k], o_[k]
            d_out = d_m[k] * tanh_c[k] * o * (ONE_32 - o)
            d_cell = d_c[k] + d_cell_h[k] + p_o[k] * d_out
            d_in = d_cell * cand * i * (ONE_32 - i)
            d_forget = d_cell * c_prev[k] * f * (ONE_32 - f)
            d_i[k], d_f[k], d_o[k] = d_in, d_forget, d_out
            d_g[k] = d_cell * i * (ONE_32 - cand * cand)
            d_c[k] = d_cell * f + p_i[k] * d_in + p_f[k] * d_forget
            dp_i[k] += d_in * c_prev[k]
            dp_f[k] += d_forget * c_prev[k]
            dp_o[k] += d_out * c_new[k]
        return
    for k in range(n):
        i, f, cand, o = i_[k], f_[k], g_[k], o_[k]
        d_cell = d_c[k] + d_cell_h[k]
        d_i[k] = d_cell * cand * i * (ONE_32 - i)
        d_f[k] = d_cell * c_prev[k] * f * (ONE_32 - f)
        d_g[k] = d_cell * i * (ONE_32 - cand * cand)
        d_o[k] = d_m[k] * tanh_c[k] * o * (ONE_32 - o)
        d_c[k] = d_cell * f


@jit
def gate_major_step_backward(t, steps, d_m, gates, c_all, tanh_c, keep, peep_rows, d_c,
                              d_peep_rows, work, d_gates_t, c_hat, rstd, ln_c_weight,
                              d_ln_c_weight, d_ln_c_bias, d_norm, d_cell_h):
    """Step ``t``'s gate gradients for :func:`gate_major_step`'s cell, into ``d_gates_t (B,
    4H)`` (the layout the weight gradients' GEMMs read): one flat pass over the batch, through
    ``work (4, B*H)`` and then row by row into ``d_gates_t``. ``d_c (B, H)`` goes from d(c_t)
    to d(c_{t-1}); with peepholes ``d_peep_rows (3, B*H)`` accumulates their gradients per unit
    and row. A step with masked rows runs row by row; masked rows get zero and leave ``d_c`` as
    it is.

    With layer norm on ``c`` (``ln_c_weight`` not empty): ``c_hat[t] (B, H)`` and ``rstd[t]
    (B, 2)`` are the step's saved statistics, ``d_norm`` and ``d_cell_h (B*H,)`` work, and LN_c's
    parameter gradients accumulate in ``d_ln_c_*``."""
    batch, hidden = d_c.shape
    width = batch * hidden
    i0, f0 = gate_start(0, t, steps, batch, hidden), gate_start(1, t, steps, batch, hidden)
    g0, o0 = gate_start(2, t, steps, batch, hidden), gate_start(3, t, steps, batch, hidden)
    dm, dc = d_m.reshape(width), d_c.reshape(width)
    c_prev, c_new = c_all[t].reshape(width), c_all[t + 1].reshape(width)
    tanh_row = tanh_c[t].reshape(width)
    every = all_kept(keep, t)
    for k in range(1 if every else batch):
        lo, hi = (0, width) if every else (k * hidden, (k + 1) * hidden)
        if not every and not keep[k, t]:
            d_gates_t[k] = 0.0
            continue
        i_, f_ = gates[i0 + lo : i0 + hi], gates[f0 + lo : f0 + hi]
        g_, o_ = gates[g0 + lo : g0 + hi], gates[o0 + lo : o0 + hi]
        if ln_c_weight.size > 0:
            normed_output_rows_backward(dm[lo:hi], o_, tanh_row[lo:hi],
                                        c_hat[t, lo // hidden : hi // hidden],
                                        rstd[t, lo // hidden : hi // hidden, 1], ln_c_weight,
                                        d_norm[lo:hi], d_cell_h[lo:hi], d_ln_c_weight,
                                        d_ln_c_bias)
            flat_gates_backward(dm[lo:hi], d_cell_h[lo:hi], i_, f_, g_, o_, c_prev[lo:hi],
                                c_new[lo:hi], tanh_row[lo:hi], peep_rows, lo, dc[lo:hi],
                                work[0, lo:hi], work[1, lo:hi], work[2, lo:hi], work[3, lo:hi],
                                d_peep_rows)
        elif peep_rows.shape[0] > 0:
            flat_peephole_cell_backward(
                dm[lo:hi], i_, f_, g_, o_, c_prev[lo:hi], c_new[lo:hi], tanh_row[lo:hi],
                peep_rows[0, lo:hi], peep_rows[1, lo:hi], peep_rows[2, lo:hi], dc[lo:hi],
                work[0, lo:hi], work[1, lo:hi], work[2, lo:hi], work[3, lo:hi],
                d_peep_rows[0, lo:hi], d_peep_rows[1, lo:hi], d_peep_rows[2, lo:hi])
        else:
            flat_cell_backward(dm[lo:hi], i_, f_, g_, o_, c_prev[lo:hi], tanh_row[lo:hi],
                                dc[lo:hi], work[0, lo:hi], work[1, lo:hi], work[2, lo:hi],
                                work[3, lo:hi])
        for b in range(lo // hidden, hi // hidden):  # indexed, not through views (0.29 against
            for g in range(4):                       # 0.68 µs a step at B=32, H=32, measured)
                for j in range(hidden):
                    d_gates_t[b, g * hidden + j] = work[g, b * hidden + j]
