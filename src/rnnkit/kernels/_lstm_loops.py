"""The compiled loops of the fused LSTM (see :mod:`rnnkit.kernels.lstm` for the equations).

The forward is one call: the input projection (with its layer norm) for all steps as one GEMM,
then per step ``U ĥ`` (and ``W_hr m``) as GEMMs and one elementwise pass per row. The backward is
one call too: the steps in reverse give the gate gradients of every step, then each weight
gradient is one GEMM. With two cores the GEMMs over all steps move to a companion
(:func:`lstm_forward_inputs`, :func:`lstm_backward_weights`) that runs them chunk by chunk next
to the recurrence (see :mod:`rnnkit.kernels._sync`).

Everything saved is time-major (``[t]`` is a contiguous ``(B, ·)`` block), so that each step's
GEMM reads the saved arrays in place, and the weight gradients are GEMMs over all ``T·B`` rows.
Step GEMMs just over OpenBLAS's small-matrix limit run in column blocks under it; larger ones run
with the batch as the product's minor dimension, which OpenBLAS runs faster, and are transposed
back. The caller (:mod:`rnnkit.kernels.lstm`'s array level) allocates every
array (returning arrays from a compiled function costs microseconds each) and keeps the
backward's work arrays between calls, since fresh memory of that size costs page faults on every
call. The common case, tanh and sigmoid
(with or without peepholes and layer norm), has its own row loops at B=1, where every activation
is inlined and vectorised, and runs gate-major at B > 1 (:mod:`rnnkit.kernels._lstm_gate_major`).
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._blas import dot_rows, gemm_tn_into
from rnnkit.kernels._lstm_gate_major import (
    add_gate_biases,
    gate_major_normed_step,
    gate_major_projection,
    gate_major_step,
    gate_major_step_backward,
    layer_norm_projection,
)
from rnnkit.kernels._mkl import pack, pack_transposed, packed_product, restore, serial
from rnnkit.kernels._numba import (
    ONE_32,
    SIGMOID,
    TANH,
    activate,
    derivative,
    jit,
    sigmoid_t,
    tanh_t,
)
from rnnkit.kernels._rows import (
    block_view1,
    block_view2,
    block_view3,
    copy,
    dot_column_blocks,
    emit_outputs,
    input_x_gradient_into,
    layer_norm_row,
    layer_norm_row_backward,
    layer_norm_rows_backward,
    masked_state_grad,
    repeat_rows,
    route_output_grads,
    transpose_into,
    weight_gradients_into,
)
from rnnkit.kernels._sync import chunk_count, publish, wait_for


@jit
def _cell_row(pre, x_row, c_prev, peephole, act, rec_act, gates, c_new):
    """Gates ``i, f, g, o`` (activated, into ``gates (4H,)``) and ``c_new (H,)`` for one row.

    The pre-activations are ``pre + x_row`` (``LN_hh(U ĥ)`` and ``x̂``, both ``(4H,)``); ``pre``
    is used as scratch, and ``x_row`` may be ``gates``.
    """
    hidden = c_prev.size
    peep = peephole.shape[0] > 0
    for j in range(4 * hidden):
        pre[j] += x_row[j]
    if peep:
        for j in range(hidden):
            pre[j] += peephole[0, j] * c_prev[j]
            pre[hidden + j] += peephole[1, j] * c_prev[j]
    activate(rec_act, pre[: 2 * hidden], gates[: 2 * hidden])
    activate(act, pre[2 * hidden : 3 * hidden], gates[2 * hidden : 3 * hidden])
    for j in range(hidden):
        c_new[j] = gates[hidden + j] * c_prev[j] + gates[j] * gates[2 * hidden + j]
    if peep:
        for j in range(hidden):
            pre[3 * hidden + j] += peephole[2, j] * c_new[j]
    activate(rec_act, pre[3 * hidden :], gates[3 * hidden :])


@jit
def _plain_row(gates, x_row, c_prev, peephole, c_new, tanh_c, m):
    """The tanh/sigmoid cell without layer norm on one row, in one pass: the pre-activations are
    ``gates + x_row`` (``x̂`` and ``U ĥ``, both ``(4H,)``); ``gates`` holds the activated gates on
    exit. Writes ``c_new``, ``tanh(c_new)`` and ``m = o ⊙ tanh(c)``. ``peephole`` is ``(3, H)``
    or empty. The loops run it at B=1, where the row is the whole batch and the saved gates keep
    this row layout (see :func:`~rnnkit.kernels._lstm_gate_major.gate_major_step` for B > 1)."""
    hidden = c_prev.size
    if peephole.shape[0] > 0:
        for j in range(hidden):
            cp = c_prev[j]
            i = sigmoid_t(gates[j] + x_row[j] + peephole[0, j] * cp)
            f = sigmoid_t(gates[hidden + j] + x_row[hidden + j] + peephole[1, j] * cp)
            g = tanh_t(gates[2 * hidden + j] + x_row[2 * hidden + j])
            c = f * cp + i * g
            o = sigmoid_t(gates[3 * hidden + j] + x_row[3 * hidden + j] + peephole[2, j] * c)
            t = tanh_t(c)
            gates[j], gates[hidden + j], gates[2 * hidden + j], gates[3 * hidden + j] = i, f, g, o
            c_new[j] = c
            tanh_c[j] = t
            m[j] = o * t
        return
    for j in range(hidden):
        i = sigmoid_t(gates[j] + x_row[j])
        f = sigmoid_t(gates[hidden + j] + x_row[hidden + j])
        g = tanh_t(gates[2 * hidden + j] + x_row[2 * hidden + j])
        o = sigmoid_t(gates[3 * hidden + j] + x_row[3 * hidden + j])
        c = f * c_prev[j] + i * g
        t = tanh_t(c)
        gates[j], gates[hidden + j], gates[2 * hidden + j], gates[3 * hidden + j] = i, f, g, o
        c_new[j] = c
        tanh_c[j] = t
        m[j] = o * t


@jit
def _plain_row_ln(gates, x_row, c_prev, peephole, c_new, c_hat, ln_weight, ln_bias, eps, tanh_c,
                  m):
    """The tanh/sigmoid cell with layer norm on the cell, in one pass per row: the
    pre-activations are ``gates + x_row`` (``x̂`` and ``LN_hh(U ĥ)``, both ``(4H,)``); ``gates``
    holds the activated gates on exit. Writes ``c_new``, ``tanh_c = tanh(LN_c(c_new))`` and ``m =
    o ⊙ tanh_c``; returns LN's ``1 / std`` and keeps the normalised cell in ``c_hat``.
    ``peephole`` is ``(3, H)`` or empty. The loops run it at B=1 (see
    :func:`~rnnkit.kernels._lstm_gate_major.gate_major_step` for B > 1)."""
    hidden = c_prev.size
    peep = peephole.shape[0] > 0
    for j in range(hidden):
        cp = c_prev[j]
        a_i = gates[j] + x_row[j]
        a_f = gates[hidden + j] + x_row[hidden + j]
        if peep:
            a_i += peephole[0, j] * cp
            a_f += peephole[1, j] * cp
        i, f = sigmoid_t(a_i), sigmoid_t(a_f)
        g = tanh_t(gates[2 * hidden + j] + x_row[2 * hidden + j])
        c = f * cp + i * g
        a_o = gates[3 * hidden + j] + x_row[3 * hidden + j]
        if peep:
            a_o += peephole[2, j] * c
        gates[j], gates[hidden + j], gates[2 * hidden + j] = i, f, g
        gates[3 * hidden + j] = sigmoid_t(a_o)
        c_new[j] = c
    rstd = layer_norm_row(c_new, eps, c_hat)
    for j in range(hidden):
        t = tanh_t(c_hat[j] * ln_weight[j] + ln_bias[j])
        tanh_c[j] = t
        m[j] = gates[3 * hidden + j] * t
    return rstd


@jit
def _saved_views(saved, layout):
    """The forward's saved arrays, in the block ``saved`` at ``layout`` (see
    ``rnnkit.kernels.lstm._forward_shape``)."""
    return (
        block_view3(saved, layout, 0), block_view2(saved, layout, 1),
        block_view1(saved, layout, 2), block_view3(saved, layout, 3),
        block_view3(saved, layout, 4), block_view3(saved, layout, 5),
        block_view3(saved, layout, 6), block_view3(saved, layout, 7),
        block_view3(saved, layout, 8), block_view3(saved, layout, 9),
        block_view3(saved, layout, 10), block_view3(saved, layout, 11),
    )


@jit
def _forward_scratch(saved, layout):
    """The forward's scratch arrays, after the saved ones in the same block (see
    ``rnnkit.kernels.lstm._forward_shape``): ``bias (4H,)``, ``peep_rows (3, B*H)`` (gate-major),
    ``c_new (H,)``, ``m (B, H)``, ``c_ln (H,)``, ``h_new (B, R)`` (with a projection), ``product
    (B, 4H)``, ``product_t (4H, B)`` (batch-minor), ``product_blocks (P, B, 4H/P)``, ``U^T (R,
    4H)`` and its column blocks ``(P, R, 4H/P)``, the gate-major layer norm's ``normed (4,
    B*H)``, and ``U`` packed (:mod:`rnnkit.kernels._mkl`), ``(4, ·)`` per gate for the gate-major
    cell, else ``(1, ·)``; absent ones have a zero first dimension (``packed``: zero columns).

    In the block rather than allocated here: the native call's blocks carry no reference count,
    so the views each step takes of them cost no atomic increments (about 4% of a call at B=8,
    T=100, H=32, measured with perf)."""
    return (
        block_view1(saved, layout, 12), block_view2(saved, layout, 13),
        block_view1(saved, layout, 14), block_view2(saved, layout, 15),
        block_view1(saved, layout, 16), block_view2(saved, layout, 17),
        block_view2(saved, layout, 18), block_view2(saved, layout, 19),
        block_view3(saved, layout, 20), block_view2(saved, layout, 21),
        block_view3(saved, layout, 22), block_view2(saved, layout, 23),
        block_view2(saved, layout, 24),
    )


@jit
def column_blocks_into(matrix, blocks):
    """``blocks (P, K, N/P)``: the column blocks of ``matrix (K, N)``, each C-contiguous (as
    :func:`~rnnkit.kernels._rows.split_columns` makes them); nothing for empty ``blocks``."""
    count, depth, width = blocks.shape
    for k in range(count):
        for j in range(depth):
            for c in range(width):
                blocks[k, j, c] = matrix[j, k * width + c]


@jit
def _step_product(h_rec, weight_hh, weight_hh_t, weight_hh_t_blocks, batch_minor, product_t,
                  product_blocks, packed, product):
    """A step's ``U ĥ`` into ``product (B, 4H)``, row-major: on ``U`` packed when the layout has
    it, batch-minor through ``product_t`` and transposed, on ``U`` as stored at B=1 when the
    layout has no ``U^T``, else from ``U^T``, in its column blocks when the layout has them (see
    :func:`lstm_forward`)."""
    if packed.shape[1] > 0:
        packed_product(h_rec, packed[0], product)
    elif batch_minor:
        np.dot(weight_hh, h_rec.T, product_t)
        transpose_into(product_t, product)
    elif weight_hh_t.shape[0] == 0:  # B=1
        np.dot(weight_hh, h_rec[0], product[0])
    elif weight_hh_t_blocks.shape[0] == 0:
        np.dot(h_rec, weight_hh_t, product)
    else:
        dot_column_blocks(h_rec, weight_hh_t_blocks, product_blocks, product)


@jit
def lstm_inputs(x, weight_ih_t, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias, ln_hh_bias, eps,
                gate_major, saved, layout, t0, t1):
    """The inputs of steps ``t0 .. t1 - 1``: ``x`` copied time-major into the saved ``x_t`` and
    projected into the saved gates, as :func:`lstm_forward` reads them (gate-major with every bias
    joined, or row-major without the biases; with layer norm through LN_ih, keeping ``x_hat`` and
    ``rstd_ih``). One GEMM for the steps; their rows are independent of other steps'."""
    x_t, x_hat, rstd_ih, gates, c_all, tanh_c, h_all, h_rec_all, m_all, h_hat, c_hat, rstd = (
        _saved_views(saved, layout)
    )
    batch, steps, features = x.shape
    four_h = weight_ih_t.shape[1]
    rows = batch * steps
    norm = ln_ih_weight.size > 0
    for t in range(t0, t1):
        for b in range(batch):
            copy(x[b, t], x_t[t, b])
    n0, n1 = t0 * batch, t1 * batch
    x2 = x_t[t0:t1].reshape((n1 - n0, features))
    gm = gates.reshape(gates.size)
    if gate_major:
        bias = np.zeros(four_h, gates.dtype)
        if bias_ih.size > 0:
            bias += bias_ih
        if bias_hh.size > 0:
            bias += bias_hh
        if norm:  # both layer norms' biases join the projection, after LN_ih
            dot_rows(x2, weight_ih_t, x_hat[n0:n1])
            bias += ln_ih_bias
            bias += ln_hh_bias
            layer_norm_projection(x_hat, steps, batch, eps, ln_ih_weight, bias, rstd_ih, gm, n0,
                                  n1)
        else:
            gate_major_projection(x2, weight_ih_t, rows, n0, gm)
            add_gate_biases(bias, steps, batch, gm, t0, t1)
        return
    # Written straight into the saved gates: a fresh (T*B, 4H) array would cost page faults.
    x_proj = gates.reshape(rows, four_h)
    dot_rows(x2, weight_ih_t, x_proj[n0:n1])
    if norm:
        for n in range(n0, n1):
            rstd_ih[n] = layer_norm_row(x_proj[n], eps, x_hat[n])
            for j in range(four_h):
                x_proj[n, j] = x_hat[n, j] * ln_ih_weight[j] + ln_ih_bias[j]


@jit
def lstm_forward_inputs(x, weight_ih_t, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias, ln_hh_bias,
                        eps, act, rec_act, saved, layout, chunk, sync):
    """The forward's companion (see :mod:`rnnkit.kernels._sync`): :func:`lstm_inputs` chunk by
    chunk of ``chunk`` steps, each published in ``sync[0]`` for :func:`lstm_forward`, which waits
    for a chunk's inputs before its first step."""
    batch, steps = x.shape[0], x.shape[1]
    gate_major = act == TANH and rec_act == SIGMOID and batch > 1  # as lstm_forward
    for k in range(chunk_count(steps, chunk)):
        lstm_inputs(x, weight_ih_t, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias, ln_hh_bias, eps,
                    gate_major, saved, layout, k * chunk, min(steps, (k + 1) * chunk))
        publish(sync, 0, k + 1)


@jit
def lstm_forward(x, h0, c0, weight_ih_t, weight_hh, bias_ih, bias_hh, weight_hr_t, peephole,
                 ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, eps,
                 keep, recurrent_mask, zero_output, act, rec_act, batch_minor, outputs, h_final,
                 c_final, saved, layout, chunk, sync):
    """Run the recurrence on ``x (B, T, I)`` from ``h0 (B, R)``, ``c0 (B, H)``.

    Absent options are arrays with a zero dimension. ``gates`` first receives the input
    projection, to which each step adds ``LN_hh(U ĥ)``; with ``batch_minor`` each step's ``U ĥ``
    is computed as ``U ĥ^T (4H, B)`` and transposed (see :func:`transpose_into`); else from
    ``U^T``, in its column blocks when the layout has them (see :func:`dot_column_blocks`), except
    at B=1 where an empty ``U^T`` asks for the matrix-vector product on ``U`` as stored (both
    taken from ``weight_hh`` into the block, see :func:`_forward_scratch`). Fills
    ``outputs (B, T, R)``, ``h_final``, ``c_final`` and, for the backward pass, the arrays of
    :func:`_saved_views` in the block ``saved`` at ``layout``: ``x_t (T, B, I)``; with layer
    norm ``x_hat (T*B, 4H)`` and ``rstd_ih (T*B,)``; ``gates (T, B, 4H)`` (activated; for the
    tanh/sigmoid cell at B > 1, gate-major ``(4, T, B*H)``, see
    :mod:`rnnkit.kernels._lstm_gate_major`); the carried ``c_all (T+1, B, H)`` and ``h_all (T+1,
    B, R)``; ``tanh_c (T, B, H)``; with a recurrent mask ``h_rec_all (T, B, R)``; with a projection
    ``m_all (T, B, H)``; with layer norm ``h_hat (T, B, 4H)``, ``c_hat (T, B, H)`` and ``rstd
    (T, B, 2)``. With ``chunk > 0`` the companion (:func:`lstm_forward_inputs`) projects the
    inputs, and the step starting each chunk waits in ``sync`` for it.
    """
    x_t, x_hat, rstd_ih, gates, c_all, tanh_c, h_all, h_rec_all, m_all, h_hat, c_hat, rstd = (
        _saved_views(saved, layout)
    )
    (bias, peep_all, c_new, m, c_ln, h_new, product, product_t, product_blocks, weight_hh_t,
     weight_hh_t_blocks, normed, packed) = _forward_scratch(saved, layout)
    if weight_hh_t.shape[0] > 0:
        transpose_into(weight_hh, weight_hh_t)
    column_blocks_into(weight_hh_t, weight_hh_t_blocks)
    batch, steps, features = x.shape
    hidden, rec = c0.shape[1], h0.shape[1]
    packs = packed.shape[1] > 0
    threads = serial(packs)
    if packs:  # U^T packed whole, or per gate (each gate's rows of U)
        rows = weight_hh.shape[0] // packed.shape[0]
        for k in range(packed.shape[0]):
            pack_transposed(weight_hh[k * rows : (k + 1) * rows], packed[k])
    four_h = 4 * hidden
    proj, norm = weight_hr_t.shape[0] > 0, ln_hh_weight.size > 0
    has_mask = recurrent_mask.size > 0
    fast = act == TANH and rec_act == SIGMOID
    gate_major = fast and batch > 1
    # Row-major, the biases join U ĥ row by row below, while the row is in cache, rather than in
    # a pass of their own over the (T*B, 4H) projection (gate-major, they join the projection).
    bias[:] = 0.0
    if bias_ih.size > 0:
        bias += bias_ih
    if bias_hh.size > 0:
        bias += bias_hh
    if chunk == 0:  # else the companion projects the inputs (see lstm_forward_inputs)
        lstm_inputs(x, weight_ih_t, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias, ln_hh_bias, eps,
                    gate_major, saved, layout, 0, steps)
    gm = gates.reshape(gates.size)  # gate-major (see _lstm_gate_major.gate_start)
    if gate_major and peephole.shape[0] > 0 and peep_all.shape[0] != 3:
        raise ValueError("layout: the gate-major peephole cell takes 3 rows of repeated peepholes")
    peep_rows = peep_all[: 3 if gate_major and peephole.shape[0] > 0 else 0]
    if gate_major and peephole.shape[0] > 0:
        repeat_rows(peephole.reshape(peephole.size), batch, peep_rows)
    for b in range(batch):
        copy(h0[b], h_all[0, b])
        copy(c0[b], c_all[0, b])
    # U ĥ per gate (see gate_major_step): lstm.py's _forward_shape asks for the four gates'
    # column blocks, whose products are then the gates' own
    if (gate_major and not norm and not batch_minor and not packs
            and weight_hh_t_blocks.shape[0] != 4):
        raise ValueError("weight_hh_t_blocks: the gate-major cell takes U^T in 4 column blocks")
    per_gate = batch_minor or packs
    for t in range(steps):
        if chunk > 0 and t % chunk == 0:
            wait_for(sync, 0, t // chunk + 1)
        h_rec = h_all[t]
        if has_mask:
            h_rec = h_rec_all[t]
            for b in range(batch):
                for j in range(rec):
                    h_rec[b, j] = h_all[t, b, j] * recurrent_mask[b, j]
        if gate_major and not norm:
            gate_major_step(t, steps, h_rec, weight_hh, weight_hh_t, weight_hh_t_blocks,
                             batch_minor, packed, keep, gm, peep_rows,
                             product.reshape(4, batch, hidden) if per_gate else product_blocks,
                             product_t, c_all, tanh_c, m)
        else:
            _step_product(h_rec, weight_hh, weight_hh_t, weight_hh_t_blocks, batch_minor,
                          product_t, product_blocks, packed, product)
        if gate_major and norm:
            gate_major_normed_step(t, steps, product, keep, gm, peep_rows, c_all, tanh_c, m, eps,
                                   ln_hh_weight, ln_c_weight, ln_c_bias, normed, h_hat, c_hat,
                                   rstd)
        for b in range(0 if gate_major else batch):
            g = gates[t, b]  # (4H,): the input projection, activated in place below
            u_h = product[b]
            c_prev = c_all[t, b]
            if norm:
                rstd[t, b, 0] = layer_norm_row(u_h, eps, h_hat[t, b])
                for j in range(four_h):
                    u_h[j] = h_hat[t, b, j] * ln_hh_weight[j] + ln_hh_bias[j] + bias[j]
            else:
                for j in range(four_h):
                    u_h[j] += bias[j]
            if fast and norm:
                rstd[t, b, 1] = _plain_row_ln(g, u_h, c_prev, peephole, c_new, c_hat[t, b],
                                              ln_c_weight, ln_c_bias, eps, tanh_c[t, b], m[b])
            elif fast:  # B=1 (see gate_major)
                _plain_row(g, u_h, c_prev, peephole, c_new, tanh_c[t, b], m[b])
            else:
                _cell_row(u_h, g, c_prev, peephole, act, rec_act, g, c_new)
                if norm:
                    rstd[t, b, 1] = layer_norm_row(c_new, eps, c_hat[t, b])
                    for j in range(hidden):
                        c_ln[j] = c_hat[t, b, j] * ln_c_weight[j] + ln_c_bias[j]
                    activate(act, c_ln, tanh_c[t, b])
                else:
                    activate(act, c_new, tanh_c[t, b])
                for j in range(hidden):
                    m[b, j] = g[3 * hidden + j] * tanh_c[t, b, j]
            copy(c_new if keep[b, t] else c_prev, c_all[t + 1, b])
        if proj:
            for b in range(batch):
                copy(m[b], m_all[t, b])
            np.dot(m, weight_hr_t, h_new)
        else:
            h_new = m
        emit_outputs(outputs, h_all, h_new, t, keep, zero_output)
    for b in range(batch):
        copy(h_all[steps, b], h_final[b])
        copy(c_all[steps, b], c_final[b])
    restore(threads)


@jit
def _plain_row_backward(d_m, g, c_prev, c_new, tanh_c, peephole, d_c, d_gates, d_peephole):
    """Backward of :func:`_plain_row`: ``d_gates (4H,)`` from ``d_m`` and ``d_c`` (in: d(c_t),
    out: d(c_{t-1})); accumulates ``d_peephole`` when there are peepholes."""
    hidden = c_prev.size
    if peephole.shape[0] > 0:
        for j in range(hidden):
            i, f, cand, o = g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]
            t = tanh_c[j]
            dm = d_m[j]
            d_o = dm * t * o * (ONE_32 - o)
            d_cell = d_c[j] + dm * o * (ONE_32 - t * t) + peephole[2, j] * d_o
            d_i = d_cell * cand * i * (ONE_32 - i)
            d_f = d_cell * c_prev[j] * f * (ONE_32 - f)
            d_gates[j], d_gates[hidden + j], d_gates[3 * hidden + j] = d_i, d_f, d_o
            d_gates[2 * hidden + j] = d_cell * i * (ONE_32 - cand * cand)
            d_c[j] = d_cell * f + peephole[0, j] * d_i + peephole[1, j] * d_f
            d_peephole[0, j] += d_i * c_prev[j]
            d_peephole[1, j] += d_f * c_prev[j]
            d_peephole[2, j] += d_o * c_new[j]
        return
    for j in range(hidden):
        i, f, cand, o = g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]
        t = tanh_c[j]
        dm = d_m[j]
        d_cell = d_c[j] + dm * o * (ONE_32 - t * t)
        d_gates[j] = d_cell * cand * i * (ONE_32 - i)
        d_gates[hidden + j] = d_cell * c_prev[j] * f * (ONE_32 - f)
        d_gates[2 * hidden + j] = d_cell * i * (ONE_32 - cand * cand)
        d_gates[3 * hidden + j] = dm * t * o * (ONE_32 - o)
        d_c[j] = d_cell * f


@jit
def _plain_row_ln_backward(d_m, g, c_prev, c_new, tanh_c, c_hat, rstd, ln_weight, peephole,
                           d_norm, d_cell_h, d_c, d_gates, d_peephole, d_ln_weight, d_ln_bias):
    """Backward of :func:`_plain_row_ln`. ``d_norm`` and ``d_cell_h`` are ``(H,)`` work rows
    for the gradients of ``LN_c(c)`` and, through it, of ``c``: two rows, because a loop whose
    input and output are the same memory seen through two arrays runs scalar (LLVM's overlap
    check fails), about 2.5x slower measured."""
    hidden = c_prev.size
    for j in range(hidden):
        t = tanh_c[j]
        d_norm[j] = d_m[j] * g[3 * hidden + j] * (ONE_32 - t * t)
    layer_norm_row_backward(d_norm, c_hat, rstd, ln_weight, d_cell_h, d_ln_weight, d_ln_bias)
    peep = peephole.shape[0] > 0
    for j in range(hidden):
        i, f, cand, o = g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]
        d_o = d_m[j] * tanh_c[j] * o * (ONE_32 - o)
        d_cell = d_c[j] + d_cell_h[j]
        if peep:
            d_cell += peephole[2, j] * d_o
        d_i = d_cell * cand * i * (ONE_32 - i)
        d_f = d_cell * c_prev[j] * f * (ONE_32 - f)
        d_gates[j], d_gates[hidden + j], d_gates[3 * hidden + j] = d_i, d_f, d_o
        d_gates[2 * hidden + j] = d_cell * i * (ONE_32 - cand * cand)
        d_c[j] = d_cell * f
        if peep:
            d_c[j] += peephole[0, j] * d_i + peephole[1, j] * d_f
            d_peephole[0, j] += d_i * c_prev[j]
            d_peephole[1, j] += d_f * c_prev[j]
            d_peephole[2, j] += d_o * c_new[j]


@jit
def _hidden_row_backward(d_m, o_gate, tanh_c, c_hat, rstd, ln_weight, act, d_out, d_c,
                         d_ln_weight, d_ln_bias):
    """Backward of ``m = o ⊙ act(LN_c(c))``: ``d_out`` gets d(o), ``d_c`` gets d(c)."""
    hidden = d_m.size
    for j in range(hidden):
        d_out[j] = d_m[j] * tanh_c[j]
        d_c[j] = d_m[j] * o_gate[j] * derivative(act, tanh_c[j])
    if ln_weight.size > 0:
        layer_norm_row_backward(d_c, c_hat, rstd, ln_weight, d_c, d_ln_weight, d_ln_bias)


@jit
def _cell_row_backward(d_out, d_c_from_h, gates, c_prev, c_new, peephole, act, rec_act, d_pre,
                       d_c, d_peephole):
    """Backward of one row's gates: ``d_pre (4H,)``; ``d_c (H,)`` goes from d(c_t) to d(c_{t-1})."""
    hidden = c_prev.size
    peep = peephole.shape[0] > 0
    for j in range(hidden):
        input_gate, forget_gate = gates[j], gates[hidden + j]
        candidate, output_gate = gates[2 * hidden + j], gates[3 * hidden + j]
        d_pre_o = d_out[j] * derivative(rec_act, output_gate)
        d_cell = d_c[j] + d_c_from_h[j]
        if peep:
            d_cell += peephole[2, j] * d_pre_o
        d_pre_i = d_cell * candidate * derivative(rec_act, input_gate)
        d_pre_f = d_cell * c_prev[j] * derivative(rec_act, forget_gate)
        d_pre[j], d_pre[hidden + j] = d_pre_i, d_pre_f
        d_pre[2 * hidden + j] = d_cell * input_gate * derivative(act, candidate)
        d_pre[3 * hidden + j] = d_pre_o
        d_c[j] = d_cell * forget_gate
        if peep:
            d_c[j] += peephole[0, j] * d_pre_i + peephole[1, j] * d_pre_f
            d_peephole[0, j] += d_pre_i * c_prev[j]
            d_peephole[1, j] += d_pre_f * c_prev[j]
            d_peephole[2, j] += d_pre_o * c_new[j]


@jit
def _work_views(work, layout):
    """The backward's work arrays in the block ``work`` at ``layout`` (see
    ``rnnkit.kernels.lstm._backward_shape``): ``d_gates (T, B, 4H)``; with layer norm ``d_proj
    (T, B, 4H)`` and ``d_x_proj (T*B, 4H)``, the gradients of ``U ĥ`` and ``W x`` before LN_hh and
    LN_ih; with a projection ``d_h_new (T, B, R)``; ``both`` and ``result`` of
    :func:`weight_gradients_into` and ``d_x_t`` of :func:`input_x_gradient_into`."""
    return (
        block_view3(work, layout, 0), block_view3(work, layout, 1),
        block_view2(work, layout, 2), block_view3(work, layout, 3),
        block_view2(work, layout, 4), block_view2(work, layout, 5),
        block_view3(work, layout, 6),
    )


@jit
def _backward_scratch(work, layout):
    """The backward's scratch arrays, after the work arrays in the same block (see
    ``rnnkit.kernels.lstm._backward_shape`` and, for why, :func:`_forward_scratch`):
    ``peep_rows`` and ``d_peep_rows (3, B*H)`` and ``gate_work (4, B*H)`` (gate-major),
    ``carry``, ``d_new (B, R)``, ``d_m (B, H)`` (with a projection), ``d_out``, ``d_c_from_h
    (H,)`` (``(B*H,)`` for the gate-major layer norm's LN_c), ``d_rec (B, R)``, ``d_rec_t (R,
    B)`` (batch-minor), ``rec_blocks (P, B, R/P)``, ``sums (4H,)``, ``U^T (R, 4H)``
    (batch-minor), ``U``'s column blocks ``(P, 4H, R/P)`` and ``U`` packed (see
    :mod:`rnnkit.kernels._mkl`; empty for none)."""
    return (
        block_view2(work, layout, 7), block_view2(work, layout, 8),
        block_view2(work, layout, 9), block_view2(work, layout, 10),
        block_view2(work, layout, 11), block_view2(work, layout, 12),
        block_view1(work, layout, 13), block_view1(work, layout, 14),
        block_view2(work, layout, 15), block_view2(work, layout, 16),
        block_view3(work, layout, 17), block_view1(work, layout, 18),
        block_view2(work, layout, 19), block_view3(work, layout, 20),
        block_view1(work, layout, 21),
    )


@jit
def lstm_backward(d_outputs, saved, layout, weight_ih, weight_hh, weight_hr, peephole,
                  ln_ih_weight, ln_hh_weight, ln_c_weight, keep, recurrent_mask, zero_output, act,
                  rec_act, batch_minor, need, work, work_layout,
                  d_x, d_h, d_c, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, d_weight_hr,
                  d_peep, d_ln, chunk, sync):
    """Backpropagate through time from ``lstm_forward``'s saved arrays (the block ``saved`` at
    ``layout``; ``batch_minor`` as there, for each step's ``d(ĥ) = d(U ĥ) U``, which otherwise
    runs in ``U``'s column blocks when the work layout has them).

    The work arrays of :func:`_work_views` are carved from ``work`` at ``work_layout``.

    ``need`` flags the gradients of ``(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)``.
    Fills ``d_x (B, T, I)``, ``d_h`` and ``d_c`` (the initial state's; they hold the final
    state's gradients on entry), ``d_weight_ih``, ``d_weight_hh``, ``d_bias_ih``, ``d_bias_hh``,
    ``d_weight_hr``, ``d_peep`` and ``d_ln (6, 4H)``: the gradients of LN_ih, LN_hh and LN_c's
    weights and biases (LN_c's in the first H columns). Arrays of unneeded gradients may be
    empty. With ``chunk > 0`` each finished chunk is published in ``sync`` and the companion
    (:func:`lstm_backward_weights`) computes the gradients of :func:`lstm_step_gradients`.
    """
    x_t, x_hat, rstd_ih, gates, c_all, tanh_c, h_all, h_rec_all, m_all, h_hat, c_hat, rstd = (
        _saved_views(saved, layout)
    )
    d_gates, d_proj, d_x_proj, d_h_new, both, result, d_x_t = _work_views(work, work_layout)
    (peep_all, d_peep_all, gate_work, carry, d_new, d_m, d_out, d_c_from_h, d_rec, d_rec_t,
     rec_blocks, sums, weight_hh_t, weight_hh_blocks, packed) = _backward_scratch(work,
                                                                                  work_layout)
    if weight_hh_t.shape[0] > 0:
        transpose_into(weight_hh, weight_hh_t)
    column_blocks_into(weight_hh, weight_hh_blocks)
    packs = packed.size > 0
    threads = serial(packs)
    if packs:
        pack(weight_hh, packed)
    steps, batch, four_h = gates.shape
    hidden = four_h // 4
    proj, norm = weight_hr.shape[0] > 0, ln_hh_weight.size > 0
    has_mask = recurrent_mask.size > 0
    fast = act == TANH and rec_act == SIGMOID
    gate_major = fast and batch > 1  # as lstm_forward saved the gates
    gm = gates.reshape(gates.size)  # gate-major (see _lstm_gate_major.gate_start)
    if gate_major and (gate_work.shape[0] != 4 or peep_all.shape[0] != 3):
        raise ValueError("work_layout: the gate-major cell takes its rows of gates and peepholes")
    peeps = 3 if gate_major and peephole.shape[0] > 0 else 0
    peep_rows, d_peep_rows = peep_all[:peeps], d_peep_all[:peeps]
    d_peep_rows[:] = 0.0
    if peeps > 0:
        repeat_rows(peephole.reshape(peephole.size), batch, peep_rows)
    carry[:] = 0.0
    d_peep[:] = 0.0
    d_ln[:] = 0.0
    for t in range(steps - 1, -1, -1):
        route_output_grads(d_outputs, carry, t, keep, zero_output, d_h, d_new)
        if proj:
            np.dot(d_new, weight_hr, d_m)
            for b in range(batch):
                copy(d_new[b], d_h_new[t, b])
        else:
            d_m = d_new
        dg_t = d_gates[t]
        if gate_major:
            gate_major_step_backward(t, steps, d_m, gm, c_all, tanh_c, keep, peep_rows, d_c,
                                      d_peep_rows, gate_work, dg_t, c_hat, rstd, ln_c_weight,
                                      d_ln[4, :hidden], d_ln[5, :hidden], d_out, d_c_from_h)
        for b in range(0 if gate_major else batch):
            if not keep[b, t]:
                dg_t[b] = 0.0
                continue
            g = gates[t, b]
            if fast and norm:
                _plain_row_ln_backward(d_m[b], g, c_all[t, b], c_all[t + 1, b], tanh_c[t, b],
                                       c_hat[t, b], rstd[t, b, 1], ln_c_weight, peephole, d_out,
                                       d_c_from_h, d_c[b], dg_t[b], d_peep, d_ln[4, :hidden],
                                       d_ln[5, :hidden])
            elif fast:  # B=1 (see gate_major)
                _plain_row_backward(d_m[b], g, c_all[t, b], c_all[t + 1, b], tanh_c[t, b],
                                    peephole, d_c[b], dg_t[b], d_peep)
            else:
                # Without layer norm c_hat and rstd are empty: pass rows the callee never reads.
                c_hat_row = c_hat[t, b] if norm else tanh_c[t, b]
                rstd_c = rstd[t, b, 1] if norm else ONE_32
                _hidden_row_backward(d_m[b], g[3 * hidden :], tanh_c[t, b], c_hat_row, rstd_c,
                                     ln_c_weight, act, d_out, d_c_from_h, d_ln[4, :hidden],
                                     d_ln[5, :hidden])
                _cell_row_backward(d_out, d_c_from_h, g, c_all[t, b], c_all[t + 1, b], peephole,
                                   act, rec_act, dg_t[b], d_c[b], d_peep)
        if norm:
            layer_norm_rows_backward(dg_t, h_hat[t], rstd[t, :, 0], ln_hh_weight, d_proj[t],
                                     d_ln[2], d_ln[3])
        d_product = d_proj[t] if norm else dg_t  # (B, 4H): d(U ĥ)
        if batch_minor:  # never packed (see lstm._backward_shape)
            np.dot(weight_hh_t, d_product.T, d_rec_t)
            masked_state_grad(d_rec_t.T, recurrent_mask, t, keep, d_h)
        else:
            if packs:
                packed_product(d_product, packed, d_rec)
            elif weight_hh_blocks.shape[0] == 0:
                np.dot(d_product, weight_hh, d_rec)
            else:
                dot_column_blocks(d_product, weight_hh_blocks, rec_blocks, d_rec)
            masked_state_grad(d_rec, recurrent_mask, t, keep, d_h)
        if chunk > 0 and t % chunk == 0:  # the chunk's gate gradients, for the companion
            publish(sync, 0, chunk_count(steps, chunk) - t // chunk)
    restore(threads)
    for g in range(d_peep_rows.shape[0]):  # the gate-major pass's per-row peephole gradients
        for b in range(batch):
            for j in range(hidden):
                d_peep[g, j] += d_peep_rows[g, b * hidden + j]
    if chunk == 0:  # else the companion does (see lstm_backward_weights)
        lstm_step_gradients(saved, layout, weight_ih, ln_ih_weight, has_mask, need, work,
                            work_layout, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh,
                            d_weight_hr, d_ln, 0, steps, False)


@jit
def lstm_step_gradients(saved, layout, weight_ih, ln_ih_weight, has_mask, need, work, work_layout,
                        d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, d_weight_hr, d_ln,
                        t0, t1, accumulate):
    """What steps ``t0 .. t1 - 1`` give, from their gate gradients, to the gradients of the
    weights and biases (added to the other steps' with ``accumulate``) and of ``x``: each a GEMM
    over the steps' rows. With layer norm, LN_ih's backward runs here as well. (Arguments as for
    :func:`lstm_backward`.)"""
    x_t, x_hat, rstd_ih, gates, c_all, tanh_c, h_all, h_rec_all, m_all, h_hat, c_hat, rstd = (
        _saved_views(saved, layout)
    )
    d_gates, d_proj, d_x_proj, d_h_new, both, result, d_x_t = _work_views(work, work_layout)
    sums = block_view1(work, work_layout, 18)
    steps, batch, four_h = gates.shape
    hidden, rec, features = four_h // 4, h_all.shape[2], x_t.shape[2]
    proj, norm = m_all.shape[0] > 0, x_hat.shape[0] > 0
    total = steps * batch
    n0, n1 = t0 * batch, t1 * batch
    d_gates2 = d_gates.reshape(total, four_h)[n0:n1]
    h_rec2 = (h_rec_all if has_mask else h_all[:steps]).reshape(total, rec)[n0:n1]
    if need[5] and proj:
        gemm_tn_into(d_h_new.reshape(total, rec)[n0:n1], m_all.reshape(total, hidden)[n0:n1],
                     d_weight_hr, accumulate)
    if need[3] or need[4]:
        if not accumulate:
            sums[:] = 0.0
        for n in range(n1 - n0):
            for j in range(four_h):
                sums[j] += d_gates2[n, j]
        if need[3]:
            d_bias_ih[:] = sums
        if need[4]:
            d_bias_hh[:] = sums
    x2 = x_t.reshape(total, features)[n0:n1]
    if norm:
        if need[2]:
            gemm_tn_into(d_proj.reshape(total, four_h)[n0:n1], h_rec2, d_weight_hh, accumulate)
        # through LN_ih, into an array of its own (see _plain_row_ln_backward): the gradient of W x
        layer_norm_rows_backward(d_gates2, x_hat[n0:n1], rstd_ih[n0:n1], ln_ih_weight,
                                 d_x_proj[n0:n1], d_ln[0], d_ln[1])
        d_gates2 = d_x_proj[n0:n1]
        weight_gradients_into(d_gates2, x2, h_rec2, need[1], False, both[n0:n1], result,
                              d_weight_ih, d_weight_hh, accumulate)
    else:
        weight_gradients_into(d_gates2, x2, h_rec2, need[1], need[2], both[n0:n1], result,
                              d_weight_ih, d_weight_hh, accumulate)
    if need[0]:
        input_x_gradient_into(d_gates2, weight_ih, d_x_t, d_x, t0, t1)


@jit
def lstm_backward_weights(saved, layout, weight_ih, ln_ih_weight, has_mask, need, work,
                          work_layout, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh,
                          d_weight_hr, d_ln, chunk, sync):
    """The backward's companion (see :mod:`rnnkit.kernels._sync`): :func:`lstm_step_gradients`
    chunk by chunk of ``chunk`` steps, last chunk first, each once :func:`lstm_backward` has
    published its gate gradients in ``sync[0]``."""
    steps = block_view3(saved, layout, 3).shape[0]  # the saved gates' (see _saved_views)
    count = chunk_count(steps, chunk)
    for k in range(count - 1, -1, -1):
        wait_for(sync, 0, count - k)
        lstm_step_gradients(saved, layout, weight_ih, ln_ih_weight, has_mask, need, work,
                            work_layout, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh,
                            d_weight_hr, d_ln, k * chunk, min(steps, (k + 1) * chunk),
                            k != count - 1)
